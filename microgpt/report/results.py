"""Reading the benchmark tools' result files into the rows the report's sections read.

One reader per tool: scripts/thread_sweep.py's sweep (`sweep_rows`, its failures, skips and
peaks), pytest-benchmark's JSON (`kernel_rows`), pyperf's (`pyperf_rows`) and an asv results
folder (`asv_rows`). `read_inputs` reads everything a report is given once, into the
`ReportInputs` every section is handed; `slim` is what a committed report keeps of each file.
"""

from __future__ import annotations

import glob
import itertools
import json
import math
import os
import statistics
from dataclasses import dataclass


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


def sweep_peaks(sweeps: list[dict]) -> dict | None:
    """The matmul peaks the first sweep that has them probed with its runs."""
    return next((s["peaks_gflops"] for s in sweeps if s.get("peaks_gflops")), None)


def series_order(rows: list[dict], key: str) -> list:
    """The values of `key` in the order the rows first show them: the order of a table's lines or a plot's bars."""
    return list(dict.fromkeys(r[key] for r in rows))


@dataclass(frozen=True)
class ReportInputs:
    """Everything a section reads: each tool's results, read once, and the folder the report and its plots go to."""
    out_dir: str
    sweeps: list[dict]  # the thread sweeps' JSON, as given
    sweep_runs: list[dict]  # one row per successful sweep run (sweep_rows), with its "backend_dtype"
    peaks: dict  # {dtype: {"1": GFLOP/s, "all": GFLOP/s}}: the sweep's own probe, or --peaks-json
    source_meta: dict  # the machine the numbers came from: the first sweep's metadata, else this run's
    kernels: list[dict]
    pyperf: list[dict]
    curves: dict | None  # the loss-curves JSON
    asv_dir: str | None
    asv_file: str | None  # the asv result file the rows come from
    asv: list[dict]
    scaling: dict | None  # scripts/scale_sweep.py's JSON
    quality: dict | None  # scripts/pareto.py's JSON
    reproduce: list[str]  # the commands that make this report again


def read_inputs(args, out_dir: str, files: dict, meta: dict) -> ReportInputs:
    """The sections' inputs from the command line's `args`, `files` ({path: its JSON}) and `meta` (this run)."""
    sweeps = [files[p] for p in args.sweep]
    rows = sweep_rows(sweeps)
    for r in rows:
        r["backend_dtype"] = f"{r['backend']} {r['dtype']}"
    asv_file, asv = asv_rows(args.asv) if args.asv and os.path.isdir(args.asv) else (None, [])
    # the peak measured with the sweep, never one probed now: MFU divides the sweep's speed by its own machine's peak
    peaks = load_json(args.peaks_json) if args.peaks_json else sweep_peaks(sweeps)
    peaks = (peaks.get("peaks_gflops", peaks) if peaks else None) or {}  # a report's own data/peaks.json works too
    return ReportInputs(
        out_dir=out_dir, sweeps=sweeps, sweep_runs=rows, peaks=peaks,
        # the sweep's metadata describes the machine the numbers came from
        source_meta=sweeps[0]["metadata"] if sweeps else meta,
        kernels=kernel_rows(files[args.kernels]) if args.kernels else [],
        pyperf=pyperf_rows({p: files[p] for p in args.pyperf}),
        curves=files[args.losses] if args.losses else None,
        asv_dir=args.asv, asv_file=asv_file, asv=asv,
        scaling=files[args.scaling] if args.scaling else None,
        quality=files[args.quality] if args.quality else None,
        reproduce=args.reproduce)
