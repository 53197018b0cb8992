"""The benchmark report: python -m microgpt.report --sweep thread_sweep.json [--kernels ...] [--pyperf ...]

Reads what the benchmark tools wrote and writes reports/<date>-<commit>/report.md
with PNG plots beside it (and, with --latest, the same into reports/latest/):

    --sweep     scripts/thread_sweep.py JSON: steps/s, tokens/s, GFLOP/s per backend x dtype x threads
    --kernels   pytest-benchmark JSON (`pytest tests/benchmarks --benchmark-only --benchmark-json F`)
    --pyperf    scripts/pyperf_train.py JSON files (mean +- std of one step, per file)
    --losses    loss curves per backend (scripts/make_report.py writes them)
    --asv       an asv results folder (default .asv/results when it exists): the latest run's training numbers
    --scaling   scripts/scale_sweep.py JSON: the Scaling section (microgpt/scaling.py) and its plots
    --quality   scripts/pareto.py JSON: the Quality per second section (microgpt/quality.py) and its plot

The matmul peak behind MFU is the one the sweep probed before its runs (its
`peaks_gflops`), or --peaks-json; the report never probes one itself, since a
peak measured at another moment does not describe the machine the sweep timed.
scripts/make_report.py runs every tool and then this; docs/benchmarking.md
says what each number means.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import itertools
import json
import math
import os
import shutil
import statistics
import sys

from . import perf
from .errors import MicrogptError
from .output_path import check_folder

ROOT = perf.ROOT
PLOTS = {
    "steps": "steps_per_s.png",
    "tokens": "tokens_per_s.png",
    "kernels": "kernels.png",
    "gflops": "gflops.png",
    "losses": "loss_curves.png",
    "scaling_cost": "scaling_cost.png",
    "scaling_mfu": "scaling_mfu.png",
    "roofline": "roofline.png",
    "quality": "quality_per_second.png",
}


# -- reading ------------------------------------------------------------------------


def load_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def slim(data):
    """A tool's JSON without the per-sample lists (pytest-benchmark's stats.data, the sweep's step times),
    losses rounded to 6 digits: the inputs of a committed report stay small; the summaries are all kept."""
    if isinstance(data, dict):
        return {k: (slim_losses(v) if k == "curves" else slim(v)) for k, v in data.items()
                if k not in ("data", "step_times_s") or not isinstance(v, list)}
    if isinstance(data, list):
        return [slim(x) for x in data]
    return data


def slim_losses(curves):
    return {k: [float(f"{x:.6g}") for x in v] for k, v in curves.items()} if isinstance(curves, dict) else curves


def thread_label(blas, numba, layer) -> str:
    return f"blas {blas} / numba {numba}" + (f" {layer}" if layer else "")


def sweep_rows(sweeps: list[dict]) -> list[dict]:
    """One row per successful sweep run."""
    rows = []
    for sweep in sweeps:
        for run in sweep.get("runs", []):
            res = run.get("result")
            if not res:
                continue
            cfg = run["config"]
            rows.append({
                "scenario": cfg["scenario"], "backend": cfg["backend"], "dtype": cfg["dtype"],
                "blas": cfg["blas_threads"], "numba": cfg["numba_threads"], "layer": cfg["threading_layer"],
                "threads": thread_label(cfg["blas_threads"], cfg["numba_threads"], cfg["threading_layer"]),
                "layer_used": res.get("numba_threading_layer"),
                "steps_per_s": res["steps_per_s"], "tokens_per_s": res["tokens_per_s"],
                "gflops": res["model_gflops_per_s"], "compile_s": res["compile_s"],
                "compile_kind": res.get("compile_kind"), "median_step_s": res.get("median_step_s"),
                "p25": res.get("p25_step_s"), "p75": res.get("p75_step_s"),
                "timed_steps": res["timed_steps"], "final_loss": res["final_loss"],
                "load": res.get("load_average_1min"), "data": run.get("data"),
            })
    return rows


def sweep_failures(sweeps: list[dict]) -> list[tuple[dict, str]]:
    return [(run["config"], run["error"]) for sweep in sweeps for run in sweep.get("runs", []) if "error" in run]


def sweep_skips(sweeps: list[dict]) -> dict[tuple, str]:
    out = {}
    for sweep in sweeps:
        for run in sweep.get("runs", []):
            cfg = run["config"]
            if cfg.get("skipped"):
                out[(cfg["scenario"], cfg["backend"], cfg["dtype"])] = cfg["skipped"]
    return out


def _case(test_name: str, group: str) -> str:
    """What a pytest-benchmark test times, without the kernel's name: forward, backward, forward_and_backward."""
    short = test_name.removeprefix("test_").split("[")[0]
    if group.startswith("train_step"):
        return ""
    return short.removeprefix(group + "_").removeprefix("cross_entropy_")


def kernel_rows(bench: dict) -> list[dict]:
    """pytest-benchmark JSON -> one row per benchmark, median seconds and FLOPs of a call."""
    rows = []
    for b in bench.get("benchmarks", []):
        info = b.get("extra_info", {})
        params = b.get("params") or {}
        group = b.get("group") or "?"
        parts = (_case(b["name"], group), info.get("size") or info.get("scenario"), info.get("dtype"),
                 info.get("impl") or info.get("kind") or info.get("backend"))
        label = " ".join(str(x) for x in parts if x)
        if info.get("steps_per_call"):  # a training call is a chunk of steps: its median is not one step's
            label += f" ({info['steps_per_call']} steps per call)"
        rows.append({"group": group, "name": b["name"], "label": label or b["name"],
                     "median_s": b["stats"]["median"], "iqr_s": b["stats"]["iqr"], "rounds": b["stats"]["rounds"],
                     "flops": info.get("flops"), "dtype": info.get("dtype") or params.get("dtype"),
                     "backend": info.get("backend"), "tokens": info.get("tokens")})
    return rows


def pyperf_rows(files: dict[str, dict]) -> list[dict]:
    """Mean, std and number of values of each benchmark of each pyperf file ({path: its JSON}; warm-ups excluded)."""
    rows = []
    for path, data in files.items():
        for b in data.get("benchmarks", []):
            values = [v for run in b.get("runs", []) for v in run.get("values", [])]
            if not values:
                continue
            name = b.get("metadata", {}).get("name") or data.get("metadata", {}).get("name", "?")
            rows.append({"file": os.path.basename(path), "name": name, "mean_s": statistics.fmean(values),
                         "std_s": statistics.stdev(values) if len(values) > 1 else 0.0, "values": len(values)})
    return rows


def _asv_run_time(path: str, data: dict) -> tuple:
    """When an asv result file (`data`, read from `path`) was run: its latest `started_at` (ms), then its mtime.
    Not its "date", which is the commit's: two environments' files of one commit share it."""
    columns = data.get("result_columns", [])
    started = [dict(zip(columns, entry)).get("started_at") or 0 for entry in data.get("results", {}).values()]
    return max(started, default=0), os.path.getmtime(path)


def asv_rows(results_dir: str, prefix: str = "training.") -> tuple[str | None, list[dict]]:
    """The most recently run asv result file under results_dir holding benchmarks that start with `prefix`:
    those benchmarks, one row per combination of params."""
    newest, newest_time, data = None, None, None  # each file is read once: a results folder grows with every run
    for f in glob.glob(os.path.join(results_dir, "*", "*.json")):
        if os.path.basename(f) in ("machine.json", "benchmarks.json"):
            continue
        candidate = load_json(f)
        if not any(name.startswith(prefix) for name in candidate.get("results", {})):
            continue
        run_time = _asv_run_time(f, candidate)
        if newest is None or run_time > newest_time:  # the first of equals, as max() picks
            newest, newest_time, data = f, run_time, candidate
    if newest is None:
        return None, []
    columns = data.get("result_columns", ["result", "params"])
    rows = []
    for name, entry in sorted(data.get("results", {}).items()):
        if not name.startswith(prefix):
            continue
        record = dict(zip(columns, entry))
        results, params = record.get("result"), record.get("params") or []
        if not isinstance(results, list):
            results = [results]
        combos = list(itertools.product(*params)) if params else [()]
        for combo, value in zip(combos, results):
            if isinstance(value, float) and math.isnan(value):
                value = None  # asv's mark for a benchmark skipped in setup
            rows.append({"name": name, "params": [str(p).strip("'") for p in combo], "value": value})
    return newest, rows


# -- plots -----------------------------------------------------------------------------


def save_png(fig, path: str) -> None:
    """Write a figure as a 256-colour PNG: a quarter of the size of matplotlib's RGBA one, and committed reports
    stay small. Falls back to the plain PNG without Pillow."""
    import io

    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    try:
        from PIL import Image
    except ImportError:
        with open(path, "wb") as f:
            f.write(buf.getvalue())
        return
    Image.open(buf).convert("RGB").quantize(colors=256).save(path, optimize=True)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series_order(rows, key):
    return list(dict.fromkeys(r[key] for r in rows))


def plot_sweep(rows: list[dict], metric: str, ylabel: str, path: str) -> None:
    """Grouped bars, one panel per scenario: backend x dtype on x, one bar per thread setting run, log y."""
    plt = _pyplot()
    scenarios = _series_order(rows, "scenario")
    settings = _series_order(rows, "threads")
    color = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(settings)}  # the same in every panel
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(12, 4.2 * len(scenarios)), squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios):
        sub = [r for r in rows if r["scenario"] == scenario]
        groups = _series_order(sub, "backend_dtype")
        width = 0.8 / max(1, max(sum(1 for r in sub if r["backend_dtype"] == g) for g in groups))
        labelled = set()
        for i, g in enumerate(groups):
            runs = sorted((r for r in sub if r["backend_dtype"] == g), key=lambda r: settings.index(r["threads"]))
            for j, r in enumerate(runs):
                x = i + width * (j - (len(runs) - 1) / 2)
                ax.bar(x, r[metric], width=width, color=color[r["threads"]],
                       label=None if r["threads"] in labelled else r["threads"])
                labelled.add(r["threads"])
        _log_axis(ax, "y")
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


def plot_kernels(rows: list[dict], path: str) -> None:
    """One panel per kernel group: median time per call (log scale)."""
    plt = _pyplot()
    groups = _series_order(rows, "group")
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
        _log_axis(ax)
        ax.set_xlabel("median µs per call (log)")
        ax.set_title(group)
        ax.grid(axis="x", which="both", alpha=0.3)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    save_png(fig, path)


def _log_axis(ax, which: str = "x") -> None:
    """Log scale with plain numbers (0.5, 20, 3000) at the decades, nothing at the minor ticks."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_gflops(kernel: list[dict], training: list[dict], peaks: dict, path: str) -> None:
    """Achieved GFLOP/s (kernels with a FLOP count, and the best training run per backend x dtype) against the peak."""
    plt = _pyplot()
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
    _log_axis(ax)
    for dtype, style in (("float64", "-"), ("float32", "--")):
        peak = perf.peak_of(peaks, dtype)
        if peak:
            ax.axvline(peak, color=colors[dtype], linestyle=style, label=f"{dtype} matmul peak: {peak:.1f} GFLOP/s")
    ax.set_xlabel("GFLOP/s (log); blue float64, orange float32")
    ax.set_title("Achieved GFLOP/s against the measured numpy matmul peak")
    if ax.get_legend_handles_labels()[1]:  # no peak lines without the sweep's peaks
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)


def moving_average(xs: list[float], k: int) -> list[float]:
    out, total = [], 0.0
    for i, x in enumerate(xs):
        total += x
        if i >= k:
            total -= xs[i - k]
        out.append(total / min(i + 1, k))
    return out


def plot_losses(curves: dict, path: str, smooth: int = 50) -> None:
    """Top: every backend's loss (moving average). Bottom: |loss - python's loss| step by step, log scale."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), gridspec_kw={"height_ratios": [3, 2]})
    colors = {}
    for label, losses in curves.items():
        (line,) = top.plot(range(1, len(losses) + 1), moving_average(losses, smooth), label=label, linewidth=1.2)
        colors[label] = line.get_color()  # the same colour for a backend in both panels
    top.set_ylabel(f"training loss ({smooth}-step moving average)")
    top.set_title("Loss per backend (names, reference schedule, same documents and initial weights)")
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    ref_label = reference_curve(curves)
    if ref_label:
        ref = curves[ref_label]
        for label, losses in curves.items():
            if label == ref_label:
                continue
            n = min(len(ref), len(losses))
            # an exact match is drawn at 1e-17, below float64's resolution of a loss near 3
            diffs = [max(abs(a - b), 1e-17) for a, b in zip(ref[:n], losses[:n])]
            bottom.plot(range(1, n + 1), diffs, label=label, linewidth=0.9, color=colors[label])
        _log_axis(bottom, "y")
        bottom.set_ylabel(f"|loss - {ref_label}|")
        bottom.legend(fontsize=7, ncol=2)
        bottom.grid(alpha=0.3)
    else:
        bottom.axis("off")
    bottom.set_xlabel("step")
    fig.tight_layout()
    save_png(fig, path)


def reference_curve(curves: dict) -> str | None:
    return next((k for k in curves if k.startswith("python")), None)


# -- the report ------------------------------------------------------------------------


def fmt(x: float, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(header: list[str], rows: list[list], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


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
    for scenario in _series_order(rows, "scenario"):
        sub = [r for r in rows if r["scenario"] == scenario]
        python = [r["steps_per_s"] for r in sub if r["backend"] == "python"]
        base = statistics.median(python) if python else None  # python has no threads: every run is the same one
        body = []
        for g in _series_order(sub, "backend_dtype"):
            runs = [r for r in sub if r["backend_dtype"] == g]
            single = next((r for r in runs if r["blas"] == 1 and r["numba"] == 1), None)
            best, real = best_run(runs)
            peak = perf.peak_of(peaks, best["dtype"])
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


def sweep_peaks(sweeps: list[dict]) -> dict | None:
    """The matmul peaks the first sweep that has them probed with its runs."""
    return next((s["peaks_gflops"] for s in sweeps if s.get("peaks_gflops")), None)


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
    for scenario in _series_order(rows, "scenario"):
        sub = [r for r in rows if r["scenario"] == scenario]
        settings = _series_order(sub, "threads")
        body = []
        for g in _series_order(sub, "backend_dtype"):
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
    settings = _series_order(sub, "threads")
    body = []
    for backend in _series_order(sub, "backend"):
        cells = []
        for s in settings:
            used = sorted({str(r["layer_used"]).replace(" (nothing parallel ran)", "") for r in sub
                           if r["backend"] == backend and r["threads"] == s})
            cells.append(", ".join(used))
        body.append([f"`{backend}`"] + cells)
    return (["Threading layer in use after the run, as each process reported it (\"not started\": nothing "
             "parallel ran, so the layer never mattered):", ""] + table(["backend"] + settings, body, "l" * (1 + len(settings)))
            + [""])


ASV_COLUMNS = {  # training benchmark -> (column, how to print a value)
    "training.TrainStep.time_chunk": (f"time per step (chunks of {perf.STEP_CHUNK})",
                                      lambda v: fmt_time(v / perf.STEP_CHUNK)),
    "training.TrainStep.time_step": ("time_step (older suites: 1 step per call)", fmt_time),
    "training.Throughput.track_tokens_per_s": ("tokens/s", fmt),
    "training.Throughput.track_mfu": ("MFU", lambda v: f"{v:.2f} %"),
    "training.PeakMem.peakmem_train_short": ("peak memory", lambda v: f"{v / 2 ** 20:.0f} MiB"),
}


def asv_table(rows: list[dict]) -> list[str]:
    """One line per backend x dtype x scenario that ran, one column per training benchmark."""
    names = [n for n in ASV_COLUMNS if any(r["name"] == n for r in rows)]
    cells: dict = {}
    for r in rows:
        if r["name"] in ASV_COLUMNS and r["value"] is not None:
            cells.setdefault(" ".join(r["params"]), {})[r["name"]] = ASV_COLUMNS[r["name"]][1](r["value"])
    body = [[key] + [got.get(n, "") for n in names] for key, got in cells.items()]
    return table(["backend dtype scenario"] + [ASV_COLUMNS[n][0] for n in names], body)


def write_report(args, out_dir: str, inputs: dict, meta: dict) -> str:
    """reports/<...>/report.md from `inputs` ({path: its JSON}, every input file read once) and `meta` (this run)."""
    os.makedirs(out_dir, exist_ok=True)
    data_dir = os.path.join(out_dir, "data")
    os.makedirs(data_dir, exist_ok=True)

    sweeps = [inputs[p] for p in args.sweep]
    rows = sweep_rows(sweeps)
    for r in rows:
        r["backend_dtype"] = f"{r['backend']} {r['dtype']}"
    kernels = kernel_rows(inputs[args.kernels]) if args.kernels else []
    pyperf = pyperf_rows({p: inputs[p] for p in args.pyperf})
    curves = inputs[args.losses] if args.losses else None
    asv_file, asv = asv_rows(args.asv) if args.asv and os.path.isdir(args.asv) else (None, [])
    # the peak measured with the sweep, never one probed now: MFU divides the sweep's speed by its own machine's peak
    peaks = load_json(args.peaks_json) if args.peaks_json else sweep_peaks(sweeps)
    peaks = (peaks.get("peaks_gflops", peaks) if peaks else None) or {}  # a report's own data/peaks.json works too
    with open(os.path.join(data_dir, "peaks.json"), "w", encoding="utf-8") as f:
        json.dump({"peaks_gflops": peaks, "metadata": meta}, f, indent=1)
    for src, data in inputs.items():
        if os.path.abspath(os.path.dirname(src)) != os.path.abspath(data_dir):
            with open(os.path.join(data_dir, os.path.basename(src)), "w", encoding="utf-8") as f:
                json.dump(slim(data), f, indent=None, separators=(",", ":"))

    # the sweep's metadata describes the machine the numbers came from
    src_meta = sweeps[0]["metadata"] if sweeps else meta
    git = src_meta.get("git", {})
    commit = (git.get("commit") or "unknown")[:12] + ("+dirty" if git.get("dirty") else "")
    v = src_meta.get("versions", {})
    blas = src_meta.get("blas") or {}
    lines = [
        f"# microgpt benchmark report — {src_meta.get('date', '?')[:10]}, commit {commit}",
        "",
        f"Machine: {src_meta.get('cpu')}, {src_meta.get('usable_cores')} usable cores "
        f"({src_meta.get('platform')}); Python {src_meta.get('python')}, numpy {v.get('numpy')}, "
        f"numba {v.get('numba')}, scipy {v.get('scipy')}; BLAS {blas.get('name')} {blas.get('version', '')}.",
        "",
        "How to read this and how to reproduce it: `docs/benchmarking.md`. Everything is timed after "
        "compilation (compile time is its own column). What each figure is: steps/s = 1 / the median step "
        "time (steps timed in chunks, the same way for every tool); tokens/s and model GFLOP/s = the timed "
        "steps' positions and FLOPs over their total time (a mean rate, not a median); kernels: "
        "pytest-benchmark medians; pyperf: mean ± std; matmul peak: the fastest of 9.",
        "",
    ]
    lines += load_sentence(rows, src_meta.get("usable_cores"))

    lines += ["## Headline", ""]
    if rows:
        lines += ["Training speed per backend (thread sweep; one document per step, the scenario's schedule). "
                  "*1 thread*: OMP/OPENBLAS/MKL and NUMBA threads all 1. "
                  "*last loss*: the loss of the run's last step (python runs fewer steps than the others). "
                  "*spread*: half the interquartile range of the 1-thread run's step times, as % of its median; "
                  "*best* is another thread setting only where its step times' interquartile range lies wholly "
                  "below the 1-thread run's, so noise is never shown as a thread effect. "
                  "MFU: model FLOPs per second (`microgpt.perf.flops_for_docs` over the timed steps' documents) "
                  "over the matmul peak of the same dtype (the higher of the two probes below). *compile*: "
                  "what that process's `compile()` did: a compile, or a load of machine code from Numba's disk "
                  "cache (the cold compile is measured apart, below).", ""]
        lines += headline(rows, peaks, sweep_skips(sweeps))
    else:
        lines += ["No thread sweep given (--sweep).", ""]

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
    if rows:
        lines += ["## Compile", ""] + cold_compile_table(sweeps)

    if rows:
        plot_sweep(rows, "steps_per_s", "steps/s", os.path.join(out_dir, PLOTS["steps"]))
        plot_sweep(rows, "tokens_per_s", "tokens/s", os.path.join(out_dir, PLOTS["tokens"]))
        lines += ["## Threads", "", f"![steps/s]({PLOTS['steps']})", "", f"![tokens/s]({PLOTS['tokens']})", ""]
        lines += sweep_grid(rows)
        lines += layer_table(rows)
        fails = sweep_failures(sweeps)
        if fails:
            lines += ["Failed runs:", ""]
            lines += [f"- {c['scenario']} {c['backend']} {c['dtype']} {thread_label(c['blas_threads'], c['numba_threads'], c['threading_layer'])}: "
                      f"{e.strip().splitlines()[-1][:200]}" for c, e in fails]
            lines.append("")

    if kernels:
        plot_kernels(kernels, os.path.join(out_dir, PLOTS["kernels"]))
        lines += ["## Kernels", "", f"![kernel timings]({PLOTS['kernels']})", "",
                  "pytest-benchmark medians (`tests/benchmarks`), each result checked against a plain reference. "
                  "GFLOP/s where the kernel has a FLOP count:", ""]
        body = [[r["group"], r["label"],
                 fmt_time(r["median_s"]), r["rounds"], fmt(r["flops"] / r["median_s"] / 1e9) if r.get("flops") else ""]
                for r in kernels]
        lines += table(["kernel", "case", "median", "rounds", "GFLOP/s"], body, "llrrr")
        lines.append("")

    best = {}  # as in the headline: a thread setting only where it beats 1 thread beyond the spread
    for key in dict.fromkeys((r["scenario"], r["backend_dtype"]) for r in rows):
        best[key] = best_run([r for r in rows if (r["scenario"], r["backend_dtype"]) == key])[0]
    if kernels or best:
        plot_gflops(kernels, list(best.values()), peaks, os.path.join(out_dir, PLOTS["gflops"]))
        lines += ["## GFLOP/s and MFU", "", f"![GFLOP/s against the peak]({PLOTS['gflops']})", ""]
        if best:
            body = []
            for r in best.values():
                peak, single = perf.peak_of(peaks, r["dtype"]), peaks.get(r["dtype"], {}).get("1")
                body.append([r["scenario"], r["backend_dtype"], r["threads"], fmt(r["gflops"]),
                             f"{100 * r['gflops'] / peak:.2f} %" if peak else "n/a",
                             f"{100 * r['gflops'] / single:.2f} %" if single else "n/a"])
            lines += table(["scenario", "backend dtype", "best threads", "model GFLOP/s", "MFU",
                            "vs the 1-thread peak"], body, "lllrrr")
            lines.append("")

    if curves:
        plot_losses(curves["curves"], os.path.join(out_dir, PLOTS["losses"]))
        lines += ["## Loss curves", "", f"![loss curves]({PLOTS['losses']})", ""]
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

    if pyperf:
        lines += ["## pyperf", "", "One training step, pyperf worker processes (mean ± std over all values):", ""]
        lines += table(["file", "benchmark", "mean", "std", "values"],
                       [[r["file"], r["name"], fmt_time(r["mean_s"]), fmt_time(r["std_s"]), r["values"]]
                        for r in pyperf], "llrrr")
        lines.append("")

    if asv:
        info = load_json(asv_file)
        lines += ["## asv", "", f"From `{os.path.basename(asv_file)}`, the most recently run file with training results in `{args.asv}`: commit "
                  f"{str(info.get('commit_hash'))[:8]}, environment {info.get('env_name')} (it may predate this "
                  "report's commit). MFU against the higher of this machine's two float64 or float32 matmul probes "
                  "as asv measured them; combinations skipped in setup are left out:", ""]
        lines += asv_table(asv)
        lines.append("")

    if args.scaling:
        lines += scaling_lines(inputs[args.scaling], out_dir)
    if args.quality:
        lines += quality_lines(inputs[args.quality], out_dir)

    lines += ["## Reproduce", "", "```bash", *args.reproduce, "```", ""]
    lines += ["Raw inputs of this report are in `data/`.", ""]
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def scaling_lines(doc: dict, out_dir: str) -> list[str]:
    from . import scaling

    _pyplot()  # the Agg backend, before scaling's plots import pyplot
    drawn = {"cost": (scaling.plot_cost, PLOTS["scaling_cost"]), "mfu": (scaling.plot_mfu, PLOTS["scaling_mfu"]),
             "roofline": (scaling.plot_roofline, PLOTS["roofline"])}
    plots = {name: (file if draw(doc, os.path.join(out_dir, file)) else None) for name, (draw, file) in drawn.items()}
    return scaling.section(doc, plots).splitlines() + [""]


def quality_lines(doc: dict, out_dir: str) -> list[str]:
    from . import quality

    plot_file = None
    if quality.front(doc):
        quality.plot(doc, os.path.join(out_dir, PLOTS["quality"]))
        plot_file = PLOTS["quality"]
    return quality.section(doc, plot_file).splitlines() + [""]


def report_dir_name(meta: dict) -> str:
    git = meta.get("git", {})
    commit = (git.get("commit") or "nocommit")[:8] + ("-dirty" if git.get("dirty") else "")
    date = meta.get("date") or datetime.datetime.now(datetime.timezone.utc).isoformat()
    return f"{date[:10]}-{commit}"


def check_folders(reports: str, latest: bool) -> None:
    """Where the report goes can take it: checked before any benchmark runs."""
    check_folder(reports, "--reports")
    if latest:
        check_folder(os.path.join(reports, "latest"), "--latest")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m microgpt.report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", nargs="*", default=[], help="scripts/thread_sweep.py JSON file(s)")
    p.add_argument("--kernels", help="pytest-benchmark JSON (--benchmark-json)")
    p.add_argument("--pyperf", nargs="*", default=[], help="scripts/pyperf_train.py JSON file(s)")
    p.add_argument("--losses", help="loss curves JSON (scripts/make_report.py)")
    default_asv = os.path.join(ROOT, ".asv", "results")
    p.add_argument("--asv", default=default_asv, help="asv results folder (default .asv/results, if present)")
    p.add_argument("--peaks-json", help="use these peaks instead of the sweep's: {dtype: {'1': x, 'all': y}}, or a "
                   "report's data/peaks.json")
    p.add_argument("--scaling", help="scripts/scale_sweep.py JSON (the Scaling section)")
    p.add_argument("--quality", help="scripts/pareto.py JSON (the Quality per second section)")
    p.add_argument("--reports", default=os.path.join(ROOT, "reports"), help="where report folders go")
    p.add_argument("--latest", action="store_true", help="also copy the report to <reports>/latest/")
    p.add_argument("--reproduce", nargs="*", default=["python scripts/make_report.py --latest"],
                   help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.sweep or args.kernels or args.pyperf or args.losses or args.scaling or args.quality):
        print("nothing to report: give --sweep, --kernels, --pyperf, --losses, --scaling or --quality "
              "(scripts/make_report.py runs everything)", file=sys.stderr)
        return 2
    try:
        check_folders(args.reports, args.latest)
    except MicrogptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    inputs = {p: load_json(p) for p in [*args.sweep, args.kernels, *args.pyperf, args.losses, args.scaling,
                                        args.quality] if p}
    meta = perf.run_metadata()
    source_meta = inputs[args.sweep[0]]["metadata"] if args.sweep else meta  # where the numbers came from
    out_dir = os.path.join(args.reports, report_dir_name(source_meta))
    path = write_report(args, out_dir, inputs, meta)
    print(f"wrote {path}")
    if args.latest:
        latest = os.path.realpath(os.path.join(args.reports, "latest"))  # a link to a folder stays a link
        shutil.rmtree(latest, ignore_errors=True)
        shutil.copytree(out_dir, latest)
        print(f"copied to {latest}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
