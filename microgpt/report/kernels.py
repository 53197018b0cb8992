"""The Kernels section: pytest-benchmark's medians of each kernel (tests/benchmarks), a panel per group."""

from __future__ import annotations

import math
import os

from .formatting import fmt, fmt_time, table
from .plots import PLOTS, log_axis, pyplot, save_png
from .results import ReportInputs, series_order


def plot_kernels(rows: list[dict], path: str) -> None:
    """One panel per kernel group: median time per call (log scale)."""
    plt = pyplot()
    groups = series_order(rows, "group")
    cols = 2
    nrows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(13, 3.6 * nrows), squeeze=False)
    for ax, group in zip(axes.flat, groups):
        sub = [r for r in rows if r["group"] == group]
        colors = {"float64": "tab:blue", "float32": "tab:orange"}
        ax.barh(range(len(sub)), [r["median_s"] * 1e6 for r in sub], color=[colors.get(r["dtype"], "gray") for r in sub])
        ax.set_yticks(range(len(sub)))
        ax.set_yticklabels([r["label"] for r in sub], fontsize=7)
        ax.invert_yaxis()
        log_axis(ax)
        ax.set_xlabel("median µs per call (log)")
        ax.set_title(group)
        ax.grid(axis="x", which="both", alpha=0.3)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    save_png(fig, path)


def kernels_section(inputs: ReportInputs) -> list[str]:
    kernels = inputs.kernels
    if not kernels:
        return []
    plot_kernels(kernels, os.path.join(inputs.out_dir, PLOTS["kernels"]))
    lines = ["## Kernels", "", f"![kernel timings]({PLOTS['kernels']})", "",
             "pytest-benchmark medians (`tests/benchmarks`), each result checked against a plain reference. "
             "GFLOP/s where the kernel has a FLOP count:", ""]
    body = [[r["group"], r["label"],
             fmt_time(r["median_s"]), r["rounds"], fmt(r["flops"] / r["median_s"] / 1e9) if r.get("flops") else ""]
            for r in kernels]
    lines += table(["kernel", "case", "median", "rounds", "GFLOP/s"], body, "llrrr")
    lines.append("")
    return lines
