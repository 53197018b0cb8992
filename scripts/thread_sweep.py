"""Training speed under every thread setting: backend x dtype x BLAS threads x Numba threads (x threading layer).

    python scripts/thread_sweep.py                           # names and alice, every installed backend
    python scripts/thread_sweep.py --scenarios names --backends numpy fused -o sweep.json
    python scripts/thread_sweep.py --quick                   # fewer steps, for a smoke test

Each configuration runs in a fresh process, since BLAS reads its thread count
when numpy is imported and Numba fixes its threading layer and pool when the
first parallel function runs. The process is `scripts/benchmark_train.py
--json` (same documents and learning rates as training, compile time measured
apart, steps/s from the median step, tokens/s over the timed steps, p10/p50/p90
of each tenth of the run) with these variables set:

- OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS in {1, 2}: the BLAS
  threads (all three, so none left over from the shell wins);
- NUMBA_NUM_THREADS in {1, 2};
- NUMBA_THREADING_LAYER in {workqueue, omp} (and tbb when installed), only where it
  can matter: an array backend with 2 Numba threads. Elsewhere the variable is
  unset, so the backend's own choice (workqueue unless told) applies.

The python backend uses no threads; it runs under every setting anyway (fewer
steps), which shows the noise floor. It is skipped on T=128 scenarios (about a
minute per step). The JSON holds the run's metadata (CPU, cores, versions,
BLAS, git commit) and, per configuration, the environment it ran with and the
full benchmark_train result, whose metadata says what the process saw
(thread variables, Numba's thread count and threading layer), and whether its
compile time was a compile or a load from Numba's disk cache.

Before the runs it probes the matmul peak (microgpt.machine.probe_peaks) and stores
it as `peaks_gflops`: the report's MFU is taken against that peak, never one
measured later. After them, each array backend x dtype compiles once more in a
process with an empty NUMBA_CACHE_DIR (`cold_compile`; --no-cold-compile skips
it): what a first run pays, which the runs' own compile times (mostly cache
loads) are not.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from microgpt.bench import STEP_CHUNK, bench_data_file  # noqa: E402
from microgpt.machine import probe_peaks, run_metadata  # noqa: E402
from microgpt.synthetic_data import SYNTHETIC_SOURCE, write_synthetic_data  # noqa: E402
from microgpt.threads import BLAS_VARS, THREAD_VARS  # noqa: E402
from microgpt.backends.registry import DTYPES, REGISTRY, skip_reason  # noqa: E402
from microgpt.config import load_scenario  # noqa: E402
from microgpt.errors import MicrogptError  # noqa: E402
from microgpt.output_path import check_file, write_json  # noqa: E402

BENCHMARK_TRAIN = os.path.join(ROOT, "scripts", "benchmark_train.py")
# steps per run (warm-up included) when --steps is not given: a few hundred ms to a few s of timed steps
# per run (python ~60 ms a step on names; the array backends 30 us - 300 us on names, 0.5 - 6 ms on alice)
DEFAULT_STEPS = {("names", "python"): 30, ("names", None): 1000, (None, None): 200}


def threading_layers() -> list[str]:
    layers = ["workqueue", "omp"]
    if importlib.util.find_spec("tbb") is not None:
        layers.append("tbb")
    return layers


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/thread_sweep.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", nargs="+", default=["names", "alice"])
    p.add_argument("--backends", nargs="+", default=list(REGISTRY), choices=list(REGISTRY))
    p.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    p.add_argument("--blas-threads", nargs="+", type=int, default=[1, 2], help="OMP/OPENBLAS/MKL_NUM_THREADS values")
    p.add_argument("--numba-threads", nargs="+", type=int, default=[1, 2], help="NUMBA_NUM_THREADS values")
    p.add_argument("--layers", nargs="+", default=threading_layers(),
                   help="threading layers tried with more than one Numba thread (default: those installed)")
    p.add_argument("--steps", type=int, help="steps per run, warm-up included (default: 1000 names, 30 python, "
                   "200 otherwise)")
    p.add_argument("--warmup", type=int, default=5, help="steps run before timing (default 5)")
    p.add_argument("--chunk", type=int, default=STEP_CHUNK, help="steps per train_steps() call (default "
                   f"{STEP_CHUNK}, microgpt.bench.STEP_CHUNK, as every tool here; fused runs a chunk in one "
                   "compiled call)")
    p.add_argument("--cold-compile", action=argparse.BooleanOptionalAction, default=True,
                   help="also time each array backend x dtype's compile with an empty NUMBA_CACHE_DIR (default on; "
                   "the sweep's own runs mostly load Numba's cache, which is a different cost)")
    p.add_argument("--quick", action="store_true", help="a smoke test: few steps, one BLAS and Numba setting less")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per run (default 900)")
    p.add_argument("-o", "--output", default="thread_sweep.json", help="JSON output (default thread_sweep.json)")
    return p


def steps_for(args, scenario: str, backend: str) -> int:
    if args.steps:
        return args.steps
    if args.quick:
        return 12 if backend == "python" else 40
    return DEFAULT_STEPS.get((scenario, backend)) or DEFAULT_STEPS.get((scenario, None)) or DEFAULT_STEPS[(None, None)]


def configurations(args) -> list[dict]:
    """Every run of the sweep, in order; skipped ones carry the reason."""
    runs = []
    for scenario in args.scenarios:
        block = load_scenario(scenario).model.block_size
        for backend in args.backends:
            for dtype in args.dtypes:
                skip = skip_reason(backend, dtype, block)
                for blas in args.blas_threads:
                    for numba_threads in args.numba_threads:
                        numba_backend = backend != "python"
                        layers = args.layers if numba_backend and numba_threads > 1 else [None]
                        for layer in layers:
                            runs.append({"scenario": scenario, "backend": backend, "dtype": dtype,
                                         "blas_threads": blas, "numba_threads": numba_threads,
                                         "threading_layer": layer, "skipped": skip})
    return runs


def run_env(cfg: dict) -> dict:
    env = dict(os.environ)
    for var in BLAS_VARS:
        env[var] = str(cfg["blas_threads"])
    env["NUMBA_NUM_THREADS"] = str(cfg["numba_threads"])
    env.pop("NUMBA_THREADING_LAYER", None)
    if cfg["threading_layer"]:
        env["NUMBA_THREADING_LAYER"] = cfg["threading_layer"]
    return env


def data_path(scenario: str, scratch: str) -> tuple[str, str]:
    """The real data file if one is found, else a synthetic one written to `scratch`; (path, what)."""
    cfg = load_scenario(scenario)
    path = bench_data_file(cfg)
    if path:
        return path, path
    return write_synthetic_data(cfg, os.path.join(scratch, scenario)), SYNTHETIC_SOURCE


def run_one(cfg: dict, args, data: str, scratch: str, extra_env: dict | None = None) -> dict:
    out = os.path.join(scratch, "result.json")
    if os.path.exists(out):
        os.remove(out)
    steps = steps_for(args, cfg["scenario"], cfg["backend"])
    cmd = [sys.executable, BENCHMARK_TRAIN, "--scenario", cfg["scenario"], "--backend", cfg["backend"],
           "--dtype", cfg["dtype"], "--steps", str(steps), "--warmup", str(min(args.warmup, steps - 1)),
           "--chunk", str(args.chunk), "--data", data, "--json", out]
    env = {**run_env(cfg), **(extra_env or {})}
    record = {"config": cfg, "command": cmd[1:],
              "env": {var: env.get(var) for var in THREAD_VARS}}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        record["error"] = f"timed out after {args.timeout:.0f} s"
        return record
    record["process_s"] = time.perf_counter() - t0
    if proc.returncode != 0 or not os.path.exists(out):
        record["error"] = (proc.stderr.strip() or proc.stdout.strip())[-2000:] or f"exit code {proc.returncode}"
        return record
    with open(out, encoding="utf-8") as f:
        record["result"] = json.load(f)
    return record


def cold_compiles(args, runs: list[dict], data: dict, scratch: str) -> list[dict]:
    """Each array backend x dtype's compile() in a process with an empty NUMBA_CACHE_DIR: what a first run pays."""
    out = []
    scenario = args.scenarios[0]
    pairs = dict.fromkeys((r["backend"], r["dtype"]) for r in runs
                          if not r["skipped"] and r["backend"] != "python" and r["scenario"] == scenario)
    for backend, dtype in pairs:
        cfg = {"scenario": scenario, "backend": backend, "dtype": dtype, "blas_threads": 1, "numba_threads": 1,
               "threading_layer": None}
        with tempfile.TemporaryDirectory(prefix="microgpt-cold-cache-") as cache:
            one = argparse.Namespace(**{**vars(args), "steps": 2, "warmup": 1, "chunk": 1})
            record = run_one(cfg, one, data[scenario][0], scratch, extra_env={"NUMBA_CACHE_DIR": cache})
        entry = {"scenario": scenario, "backend": backend, "dtype": dtype}
        if "result" in record:
            entry.update(compile_s=record["result"]["compile_s"], compile_kind=record["result"].get("compile_kind"))
            print(f"cold compile {backend} {dtype}: {entry['compile_s']:.1f} s ({entry['compile_kind']})", flush=True)
        else:
            entry["error"] = record["error"].splitlines()[-1] if record["error"] else "failed"
        out.append(entry)
    return out


def describe(cfg: dict) -> str:
    layer = f" {cfg['threading_layer']}" if cfg["threading_layer"] else ""
    return (f"{cfg['scenario']:7s} {cfg['backend']:13s} {cfg['dtype']:7s} blas={cfg['blas_threads']} "
            f"numba={cfg['numba_threads']}{layer}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.blas_threads = args.blas_threads[:1]
    if not os.path.exists(BENCHMARK_TRAIN):
        print(f"error: {BENCHMARK_TRAIN} is missing", file=sys.stderr)
        return 1
    try:
        check_file(args.output, "--output")  # now, not after the hour of runs
    except MicrogptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    runs = configurations(args)
    todo = [r for r in runs if not r["skipped"]]
    print(f"{len(todo)} runs ({len(runs) - len(todo)} skipped), one process each", flush=True)
    records, cold = [], []
    try:  # MFU's peak, measured with the sweep: the report never probes a machine it did not time
        peaks = probe_peaks()
    except RuntimeError as e:
        peaks = None
        print(f"matmul peak probe failed, MFU will be n/a: {e}", flush=True)
    with tempfile.TemporaryDirectory(prefix="microgpt-sweep-") as scratch:
        data = {s: data_path(s, scratch) for s in args.scenarios}
        for i, cfg in enumerate(runs):
            if cfg["skipped"]:
                records.append({"config": cfg})
                continue
            path, source = data[cfg["scenario"]]
            record = run_one(cfg, args, path, scratch)
            record["data"] = source
            records.append(record)
            if "result" in record:
                r = record["result"]
                print(f"[{i + 1}/{len(runs)}] {describe(cfg)}: {r['steps_per_s']:10,.1f} steps/s "
                      f"{r['tokens_per_s']:12,.0f} tokens/s  (compile {r['compile_s']:.1f} s, "
                      f"layer {r.get('numba_threading_layer')})", flush=True)
            else:
                print(f"[{i + 1}/{len(runs)}] {describe(cfg)}: FAILED: {record['error'].splitlines()[-1]}",
                      flush=True)
        if args.cold_compile:
            cold = cold_compiles(args, runs, data, scratch)
    out = {"kind": "microgpt-thread-sweep", "version": 1, "metadata": run_metadata(),
           "settings": {k: v for k, v in vars(args).items() if k != "output"}, "peaks_gflops": peaks,
           "cold_compile": cold, "runs": records}
    try:
        write_json(args.output, out, "--output")
    except MicrogptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    failed = sum(1 for r in records if "error" in r)
    print(f"wrote {args.output} ({len(todo) - failed} runs, {failed} failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
