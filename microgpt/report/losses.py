"""The Loss curves section: every backend trains names from the same weights; how far each is from python's."""

from __future__ import annotations

import os
import statistics

from .formatting import table
from .plots import PLOTS, log_axis, pyplot, save_png
from .results import ReportInputs


def moving_average(xs: list[float], k: int) -> list[float]:
    out, total = [], 0.0
    for i, x in enumerate(xs):
        total += x
        if i >= k:
            total -= xs[i - k]
        out.append(total / min(i + 1, k))
    return out


def plot_losses(curves: dict, path: str, smooth: int = 50) -> None:
    """Top: every backend's loss (moving average). Bottom, where there is a curve beside python's:
    |loss - python's loss| step by step, log scale."""
    plt = pyplot()
    ref_label = reference_curve(curves)
    compare = ref_label is not None and len(curves) > 1  # the lower panel needs a curve beside the reference
    if compare:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), gridspec_kw={"height_ratios": [3, 2]})
    else:
        fig, top = plt.subplots(figsize=(10, 5))
        bottom = None
    colors = {}
    for label, losses in curves.items():
        (line,) = top.plot(range(1, len(losses) + 1), moving_average(losses, smooth), label=label, linewidth=1.2)
        colors[label] = line.get_color()  # the same colour for a backend in both panels
    top.set_ylabel(f"training loss ({smooth}-step moving average)")
    top.set_title("Loss per backend (names, reference schedule, same documents and initial weights)")
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    if compare:
        ref = curves[ref_label]
        for label, losses in curves.items():
            if label == ref_label:
                continue
            n = min(len(ref), len(losses))
            # an exact match is drawn at 1e-17, below float64's resolution of a loss near 3
            diffs = [max(abs(a - b), 1e-17) for a, b in zip(ref[:n], losses[:n])]
            bottom.plot(range(1, n + 1), diffs, label=label, linewidth=0.9, color=colors[label])
        log_axis(bottom, "y")
        bottom.set_ylabel(f"|loss - {ref_label}|")
        bottom.legend(fontsize=7, ncol=2)
        bottom.grid(alpha=0.3)
    (bottom or top).set_xlabel("step")
    fig.tight_layout()
    save_png(fig, path)


def reference_curve(curves: dict) -> str | None:
    return next((k for k in curves if k.startswith("python")), None)


def losses_section(inputs: ReportInputs) -> list[str]:
    curves = inputs.curves
    if not curves:
        return []
    plot_losses(curves["curves"], os.path.join(inputs.out_dir, PLOTS["losses"]))
    lines = ["## Loss curves", "", f"![loss curves]({PLOTS['losses']})", ""]
    ref_label = reference_curve(curves["curves"])
    body = []
    for label, losses in curves["curves"].items():
        tail = losses[-50:]
        diff = ""
        if ref_label and label != ref_label:
            ref = curves["curves"][ref_label]
            n = min(len(ref), len(losses))
            diff = f"{max(abs(a - b) for a, b in zip(ref[:n], losses[:n])):.2e} over {n} steps"
        body.append([label, len(losses), f"{statistics.fmean(tail):.4f}", diff])
    lines += [f"{curves.get('what', '')}", ""]
    lines += table(["backend dtype", "steps", "mean loss, last 50 steps", f"max abs difference to {ref_label}"],
                   body, "lrrl")
    lines.append("")
    return lines
