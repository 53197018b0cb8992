"""The Quality per second section: the best validation loss each budget buys in scripts/pareto.py's sweep.

Pure functions of the sweep's JSON document, read the same way by the script, the report and the
tests. Every loss here is the float64 recomputation from the saved model.json (one code path for
every backend), the validation loss on the held-out documents of SPEC §2 and the training loss on
the first 1000 training documents.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .plots import PLOTS, pyplot
from .results import ReportInputs

# test losses makemore's README reports for names.txt (its own split: a guide, not a like-for-like figure)
MAKEMORE_TEST_LOSSES = ((1.99, "makemore WaveNet, test 1.99"), (1.92, "makemore transformer, test ~1.92"))


@dataclass(frozen=True)
class FrontPoint:
    budget_s: float
    val_loss: float
    key: str  # the sweep point that reached it


def front(doc: dict) -> dict[str, list[FrontPoint]]:
    """backend -> the best validation loss at each budget (over widths and thread counts), by budget."""
    best: dict = {}
    for key, r in doc.get("points", {}).items():
        if r.get("status") != "ok":
            continue
        p = r["point"]
        slot = best.setdefault(p["backend"], {})
        have = slot.get(p["budget_s"])
        if have is None or r["val_loss_f64"] < have.val_loss:
            slot[p["budget_s"]] = FrontPoint(p["budget_s"], r["val_loss_f64"], key)
    return {b: sorted(v.values(), key=lambda f: f.budget_s) for b, v in best.items()}


def table_lines(doc: dict) -> list[str]:
    lines = ["| point (backend/width/budget/threads) | steps | wall s | val loss | train loss |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for key, r in sorted(doc.get("points", {}).items(), key=lambda kv: (kv[1]["point"]["backend"],
                                                                       kv[1]["point"]["budget_s"], kv[0])):
        if r["status"] != "ok":
            lines.append(f"| {key} | {r['status']} | | | |")
            continue
        lines.append(f"| {key} | {r['steps']} | {r['wall_s']:.1f} | {r['val_loss_f64']:.4f} | "
                     f"{r['train_loss_f64']:.4f} |")
    return lines


def print_table(doc: dict) -> None:
    print("\n".join(table_lines(doc)))


def plot(doc: dict, path: str) -> None:
    """The loss-against-time Pareto plot: one line per backend, a log time axis."""
    from ..errors import MicrogptError

    plt = pyplot()
    fronts = front(doc)
    if not fronts:
        raise MicrogptError(f"--plot {path}: no point finished, nothing to draw")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for backend, pts in sorted(fronts.items()):
        ax.plot([p.budget_s for p in pts], [p.val_loss for p in pts], marker="o", label=backend)
    ax.set_xscale("log")
    budgets = sorted({p.budget_s for pts in fronts.values() for p in pts})
    ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
    ax.minorticks_off()
    s = doc.get("settings", {})
    for loss, name in MAKEMORE_TEST_LOSSES if s.get("scenario") == "names" else ():
        ax.axhline(loss, color="grey", linestyle=":", linewidth=1)
        ax.annotate(name, (budgets[0], loss), fontsize=8, color="grey", va="bottom")
    ax.set_xlabel("training budget (s, wall clock, compile excluded)")
    ax.set_ylabel("validation loss (nats/char, float64 recomputation)")
    ax.set_title(f"{s.get('scenario', '?')}: best validation loss in a time budget\n"
                 f"(best over widths and thread counts; {s.get('n_layer')} layers, batch {s.get('batch_size')}, "
                 f"{s.get('dtype')})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="backend")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(doc: dict, plot_file: str | None) -> str:
    """The report's "Quality per second" section in Markdown."""
    meta, s = doc.get("meta", {}), doc.get("settings", {})
    lines = ["## Quality per second", "",
             f"From `scripts/pareto.py` on {meta.get('cpu', '?')}: the {s.get('scenario', '?')} scenario at "
             f"{s.get('n_layer')} layers, {s.get('n_head')} heads, batch {s.get('batch_size')}, {s.get('dtype')}, "
             "each point one `train --time-budget` run; losses recomputed in float64 from the saved model "
             "(validation: the held-out documents, never trained on; train: the first 1000 training documents, "
             "so over-fitting shows as the two part).", ""]
    sources = sorted({r.get("data") for r in doc.get("points", {}).values() if r.get("data")})
    if sources:
        lines += [f"Data: {', '.join(sources)} (names.txt and the census fallback give losses that are not "
                  "comparable).", ""]
    if plot_file:
        lines += [f"![validation loss against training time]({plot_file})", ""]
    best = {b: pts for b, pts in front(doc).items()}
    if best:
        lines += ["Best validation loss at each budget:", "",
                  "| backend | " + " | ".join(f"{p.budget_s:g} s" for p in max(best.values(), key=len)) + " |",
                  "| --- |" + " ---: |" * len(max(best.values(), key=len))]
        for backend, pts in sorted(best.items()):
            lines.append(f"| {backend} | " + " | ".join(f"{p.val_loss:.4f}" for p in pts) + " |")
        lines.append("")
    lines += ["Every point:", ""] + table_lines(doc)
    return "\n".join(lines) + "\n"


def quality_section(inputs: ReportInputs) -> list[str]:
    if not inputs.quality:
        return []
    doc, plot_file = inputs.quality, None
    if front(doc):
        plot(doc, os.path.join(inputs.out_dir, PLOTS["quality"]))
        plot_file = PLOTS["quality"]
    return section(doc, plot_file).splitlines() + [""]
