"""The thread sweep's sections (scripts/thread_sweep.py): Headline, Matmul peak, Compile, Threads.

The headline reports a thread setting other than 1 thread only where its step times'
interquartile range lies wholly below the 1-thread run's (`best_run`), so noise is never
shown as a thread effect; the GFLOP/s section (gflops.py) picks its runs the same way.
"""

from __future__ import annotations

import os
import statistics

from .. import machine
from .formatting import fmt, table
from .plots import PLOTS, log_axis, pyplot, save_png
from .results import ReportInputs, series_order, sweep_failures, sweep_skips, thread_label


def plot_sweep(rows: list[dict], metric: str, ylabel: str, path: str) -> None:
    """Grouped bars, one panel per scenario: backend x dtype on x, one bar per thread setting run, log y."""
    plt = pyplot()
    scenarios = series_order(rows, "scenario")
    settings = series_order(rows, "threads")
    color = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(settings)}  # the same in every panel
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(12, 4.2 * len(scenarios)), squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios):
        sub = [r for r in rows if r["scenario"] == scenario]
        groups = series_order(sub, "backend_dtype")
        width = 0.8 / max(1, max(sum(1 for r in sub if r["backend_dtype"] == g) for g in groups))
        labelled = set()
        for i, g in enumerate(groups):
            runs = sorted((r for r in sub if r["backend_dtype"] == g), key=lambda r: settings.index(r["threads"]))
            for j, r in enumerate(runs):
                x = i + width * (j - (len(runs) - 1) / 2)
                ax.bar(x, r[metric], width=width, color=color[r["threads"]],
                       label=None if r["threads"] in labelled else r["threads"])
                labelled.add(r["threads"])
        log_axis(ax, "y")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{scenario}: {ylabel} by backend, dtype and threads (log scale; higher is faster)")
        ax.grid(axis="y", which="both", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        order = sorted(range(len(labels)), key=lambda k: settings.index(labels[k]))
        ax.legend([handles[k] for k in order], [labels[k] for k in order], fontsize=7, ncol=3)
    fig.tight_layout()
    save_png(fig, path)


def beats(run: dict, single: dict) -> bool:
    """Whether `run` is faster than the 1-thread run beyond the noise: its step times' interquartile range lies
    wholly below the 1-thread run's. Without a spread (an older sweep) no thread effect is claimed."""
    if run is single:
        return False
    if None in (run.get("p25"), run.get("p75"), single.get("p25"), single.get("p75")):
        return False
    return run["p75"] < single["p25"]


def best_run(runs: list[dict]) -> tuple[dict, bool]:
    """(the run the headline reports, whether it is a real thread effect): the fastest setting when it beats the
    1-thread run beyond the spread, else the 1-thread run (or the fastest, when no 1-thread run exists)."""
    single = next((r for r in runs if r["blas"] == 1 and r["numba"] == 1), None)
    fastest = max(runs, key=lambda r: r["steps_per_s"])
    if single is None:
        return fastest, False
    return (fastest, True) if beats(fastest, single) else (single, False)


def spread(run: dict) -> str:
    """The step times' interquartile range as +- % of the median, the noise a thread effect must exceed."""
    if run.get("p25") is None or run.get("p75") is None:
        return "n/a"
    return f"±{50 * (run['p75'] - run['p25']) / run['median_step_s']:.0f} %"


def compile_cell(run: dict) -> str:
    kind = run.get("compile_kind")
    label = {"cache load": "cache load", "compiled": "compiled", "none": "nothing to compile"}.get(
        kind, "compile or cache load: an older sweep did not record which")
    return f"{run['compile_s']:.2f} s ({label})"


def headline(rows: list[dict], peaks: dict, skips: dict) -> list[str]:
    """Per scenario x backend x dtype: the 1-thread figures, a faster thread setting only where it beats them
    beyond the spread, MFU, speed-up over python."""
    out = []
    for scenario in series_order(rows, "scenario"):
        sub = [r for r in rows if r["scenario"] == scenario]
        python = [r["steps_per_s"] for r in sub if r["backend"] == "python"]
        base = statistics.median(python) if python else None  # python has no threads: every run is the same one
        body = []
        for g in series_order(sub, "backend_dtype"):
            runs = [r for r in sub if r["backend_dtype"] == g]
            single = next((r for r in runs if r["blas"] == 1 and r["numba"] == 1), None)
            best, real = best_run(runs)
            peak = machine.peak_of(peaks, best["dtype"])
            body.append([
                f"`{best['backend']}` {best['dtype']}",
                fmt(single["steps_per_s"]) if single else "n/a", spread(single) if single else "n/a",
                fmt(best["steps_per_s"]), best["threads"] if real else "1 thread (no setting beats it beyond the spread)",
                fmt(best["tokens_per_s"]),
                fmt(best["gflops"]), f"{100 * best['gflops'] / peak:.2f} %" if peak else "n/a",
                f"{best['steps_per_s'] / base:,.0f}x" if base else "n/a",
                compile_cell(best), f"{best['final_loss']:.4f}",
            ])
        out.append(f"**{scenario}**")
        out.append("")
        out += table(["backend, dtype", "steps/s (1 thread)", "spread", "steps/s (best)", "best threads", "tokens/s",
                      "model GFLOP/s", "MFU", "vs python", "compile", "last loss"], body, "lrrrlrrrrlr")
        missing = sorted({f"`{b}` {d}: {why}" for (s, b, d), why in skips.items() if s == scenario})
        if missing:
            out.append("")
            out.append("Not run: " + "; ".join(missing) + ".")
        out.append("")
    return out


def cold_compile_table(sweeps: list[dict]) -> list[str]:
    entries = [e for sweep in sweeps for e in sweep.get("cold_compile") or []]
    if not entries:
        return ["No cold compile was measured with this sweep (`scripts/thread_sweep.py --cold-compile`).", ""]
    body = [[e["scenario"], f"`{e['backend']}` {e['dtype']}",
             f"{e['compile_s']:.1f} s" if "compile_s" in e else f"failed: {e.get('error', '?')}"] for e in entries]
    return (["Cold compile: `compile()` in a fresh process with an empty `NUMBA_CACHE_DIR`, 1 thread (what a "
             "first run after an edit or on a new machine pays; the headline's compile column is whatever that "
             "run's process did, usually a load from the disk cache):", ""]
            + table(["scenario", "backend, dtype", "compile"], body, "llr") + [""])


def load_sentence(rows: list[dict], cores) -> list[str]:
    """The load the sweep measured, and that another process competed only when the load exceeded the cores."""
    loads = [x for r in rows if r["load"] for x in r["load"]]
    if not loads:
        return []
    text = f"Load average (1 min) measured around the sweep's runs: {min(loads):.1f} to {max(loads):.1f} on {cores} cores"
    if cores and max(loads) > cores:
        text += (f"; above {cores}, other processes competed for the cores during some runs, so compare ratios "
                 "measured side by side rather than absolute values across reports")
    return [text + ".", ""]


def sweep_grid(rows: list[dict]) -> list[str]:
    out = []
    for scenario in series_order(rows, "scenario"):
        sub = [r for r in rows if r["scenario"] == scenario]
        settings = series_order(sub, "threads")
        body = []
        for g in series_order(sub, "backend_dtype"):
            cells = []
            for s in settings:
                match = [r for r in sub if r["backend_dtype"] == g and r["threads"] == s]
                cells.append(fmt(match[0]["steps_per_s"]) if match else "")
            body.append([g] + cells)
        out.append(f"**{scenario}**, steps/s (median step):")
        out.append("")
        out += table(["backend dtype"] + settings, body)
        out.append("")
    return out


def layer_table(rows: list[dict]) -> list[str]:
    """The threading layer each array backend's process reported, per thread setting (all scenarios, dtypes)."""
    sub = [r for r in rows if r["backend"] != "python"]
    if not sub:
        return []
    settings = series_order(sub, "threads")
    body = []
    for backend in series_order(sub, "backend"):
        cells = []
        for s in settings:
            used = sorted({str(r["layer_used"]).replace(" (nothing parallel ran)", "") for r in sub
                           if r["backend"] == backend and r["threads"] == s})
            cells.append(", ".join(used))
        body.append([f"`{backend}`"] + cells)
    return (["Threading layer in use after the run, as each process reported it (\"not started\": nothing "
             "parallel ran, so the layer never mattered):", ""] + table(["backend"] + settings, body, "l" * (1 + len(settings)))
            + [""])


def headline_section(inputs: ReportInputs) -> list[str]:
    lines = ["## Headline", ""]
    if inputs.sweep_runs:
        lines += ["Training speed per backend (thread sweep; one document per step, the scenario's schedule). "
                  "*1 thread*: OMP/OPENBLAS/MKL and NUMBA threads all 1. "
                  "*last loss*: the loss of the run's last step (python runs fewer steps than the others). "
                  "*spread*: half the interquartile range of the 1-thread run's step times, as % of its median; "
                  "*best* is another thread setting only where its step times' interquartile range lies wholly "
                  "below the 1-thread run's, so noise is never shown as a thread effect. "
                  "MFU: model FLOPs per second (`microgpt.flops.flops_for_docs` over the timed steps' documents) "
                  "over the matmul peak of the same dtype (the higher of the two probes below). *compile*: "
                  "what that process's `compile()` did: a compile, or a load of machine code from Numba's disk "
                  "cache (the cold compile is measured apart, below).", ""]
        lines += headline(inputs.sweep_runs, inputs.peaks, sweep_skips(inputs.sweeps))
    else:
        lines += ["No thread sweep given (--sweep).", ""]
    return lines


def matmul_peak_section(inputs: ReportInputs) -> list[str]:
    lines, rows, peaks = [], inputs.sweep_runs, inputs.peaks
    if peaks or rows:
        lines += ["## Matmul peak (probed with the sweep)", ""]
    if peaks:
        lines += table(["dtype", "1 BLAS thread", "all cores"],
                       [[d, fmt(p.get("1")), fmt(p.get("all"))] for d, p in peaks.items()])
        lines += ["", "GFLOP/s of one 1024×1024×1024 numpy matmul (the fastest of 9, after a warm-up), each in a "
                  "fresh process with the BLAS thread variables set, by `scripts/thread_sweep.py` before its runs "
                  "(or from `--peaks-json`).", ""]
    elif rows:
        lines += ["None: the sweep holds no `peaks_gflops` (an older sweep) and no `--peaks-json` was given, so MFU "
                  "is n/a. The report never probes the peak itself: it would measure another moment's machine.", ""]
    return lines


def compile_section(inputs: ReportInputs) -> list[str]:
    return ["## Compile", ""] + cold_compile_table(inputs.sweeps) if inputs.sweep_runs else []


def threads_section(inputs: ReportInputs) -> list[str]:
    rows, out_dir = inputs.sweep_runs, inputs.out_dir
    if not rows:
        return []
    plot_sweep(rows, "steps_per_s", "steps/s", os.path.join(out_dir, PLOTS["steps"]))
    plot_sweep(rows, "tokens_per_s", "tokens/s", os.path.join(out_dir, PLOTS["tokens"]))
    lines = ["## Threads", "", f"![steps/s]({PLOTS['steps']})", "", f"![tokens/s]({PLOTS['tokens']})", ""]
    lines += sweep_grid(rows)
    lines += layer_table(rows)
    fails = sweep_failures(inputs.sweeps)
    if fails:
        lines += ["Failed runs:", ""]
        lines += [f"- {c['scenario']} {c['backend']} {c['dtype']} {thread_label(c['blas_threads'], c['numba_threads'], c['threading_layer'])}: "
                  f"{e.strip().splitlines()[-1][:200]}" for c, e in fails]
        lines.append("")
    return lines
