"""The GFLOP/s and MFU section: the kernels' and the best training runs' GFLOP/s against the matmul peak."""

from __future__ import annotations

import os

from .. import machine
from .formatting import fmt, table
from .plots import PLOTS, log_axis, pyplot, save_png
from .results import ReportInputs
from .sweep import best_run


def plot_gflops(kernel: list[dict], training: list[dict], peaks: dict, path: str) -> None:
    """Achieved GFLOP/s (kernels with a FLOP count, and the best training run per backend x dtype) against the peak."""
    plt = pyplot()
    bars = [(f"{r['group']} {r['label']}", r["flops"] / r["median_s"] / 1e9, r["dtype"]) for r in kernel
            if r.get("flops")]
    bars += [(f"training {r['scenario']} {r['backend_dtype']}", r["gflops"], r["dtype"]) for r in training]
    if not bars:
        return
    fig, ax = plt.subplots(figsize=(11, 0.24 * len(bars) + 1.8))
    colors = {"float64": "tab:blue", "float32": "tab:orange"}
    ax.barh(range(len(bars)), [b[1] for b in bars], color=[colors.get(b[2], "gray") for b in bars])
    ax.set_yticks(range(len(bars)))
    ax.set_yticklabels([b[0] for b in bars], fontsize=7)
    ax.invert_yaxis()
    log_axis(ax)
    for dtype, style in (("float64", "-"), ("float32", "--")):
        peak = machine.peak_of(peaks, dtype)
        if peak:
            ax.axvline(peak, color=colors[dtype], linestyle=style, label=f"{dtype} matmul peak: {peak:.1f} GFLOP/s")
    ax.set_xlabel("GFLOP/s (log); blue float64, orange float32")
    ax.set_title("Achieved GFLOP/s against the measured numpy matmul peak")
    if ax.get_legend_handles_labels()[1]:  # no peak lines without the sweep's peaks
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)


def gflops_section(inputs: ReportInputs) -> list[str]:
    rows, kernels, peaks = inputs.sweep_runs, inputs.kernels, inputs.peaks
    best = {}  # as in the headline: a thread setting only where it beats 1 thread beyond the spread
    for key in dict.fromkeys((r["scenario"], r["backend_dtype"]) for r in rows):
        best[key] = best_run([r for r in rows if (r["scenario"], r["backend_dtype"]) == key])[0]
    if not (kernels or best):
        return []
    plot_gflops(kernels, list(best.values()), peaks, os.path.join(inputs.out_dir, PLOTS["gflops"]))
    lines = ["## GFLOP/s and MFU", "", f"![GFLOP/s against the peak]({PLOTS['gflops']})", ""]
    if best:
        body = []
        for r in best.values():
            peak, single = machine.peak_of(peaks, r["dtype"]), peaks.get(r["dtype"], {}).get("1")
            body.append([r["scenario"], r["backend_dtype"], r["threads"], fmt(r["gflops"]),
                         f"{100 * r['gflops'] / peak:.2f} %" if peak else "n/a",
                         f"{100 * r['gflops'] / single:.2f} %" if single else "n/a"])
        lines += table(["scenario", "backend dtype", "best threads", "model GFLOP/s", "MFU",
                        "vs the 1-thread peak"], body, "lllrrr")
        lines.append("")
    return lines
