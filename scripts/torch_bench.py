"""Tokens/s of torch eager, torch compile and the fused backend, side by side in one process.

    NUMBA_NUM_THREADS=2 python scripts/torch_bench.py [--cases names-b1 alice-b16] [--threads 1 2] [--no-compile]

For each case and thread count the backends take turns, one timing window each, so that a change in the
machine's load reaches all of them alike. A window is as many steps as take ~--window seconds; the figure
is the median of --repeats windows, with the lowest and highest. Compile time (torch.compile's first trace,
Numba's compile or cache load) is measured apart and never inside a window. Prints a markdown table and,
with --json, the figures and the run metadata as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import NamedTuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from microgpt.bench import bench_dataset, step_positions  # noqa: E402
from microgpt.machine import run_metadata  # noqa: E402

class Case(NamedTuple):
    scenario: str
    model: dict  # model keys changed from the scenario's
    batch_size: int


CASES = {
    "names-b1": Case("names", {}, 1),
    "alice-b1": Case("alice", {}, 1),
    "alice-b16": Case("alice", {}, 16),
    "256/8/4/128-b16": Case("alice", {"n_embd": 256, "n_head": 8, "n_layer": 4, "block_size": 128}, 16),
}
BACKENDS = ("torch", "torch-compile", "fused")


@dataclass
class Figure:
    case: str
    backend: str
    threads: int
    dtype: str
    tokens_per_s: float  # median over the windows
    low: float
    high: float
    windows: int
    steps_per_window: int
    compile_s: float


def experiment(case: str, dtype: str):
    from microgpt.config import load_scenario
    from microgpt.experiment import prepare

    c = CASES[case]
    cfg = load_scenario(c.scenario).replace("training", dtype=dtype, batch_size=c.batch_size, num_steps=100_000)
    if c.model:
        cfg = cfg.replace("model", **c.model)
    return prepare(cfg, dataset=bench_dataset(cfg), quiet=True)


def make(exp, backend: str, threads: int):
    from microgpt.backends import get_backend_class

    V = exp.tokenizer.vocab_size
    if backend.startswith("torch"):
        be = get_backend_class("torch")(exp.cfg, V, exp.weights, exp.train_tokens,
                                        compile=backend == "torch-compile", threads=threads)
    else:
        import numba

        numba.set_num_threads(threads)
        be = get_backend_class(backend)(exp.cfg, V, exp.weights, exp.train_tokens)
    return be, be.compile()


def set_threads(backend: str, threads: int) -> None:
    if backend.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
    else:
        import numba

        numba.set_num_threads(threads)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    p.add_argument("--no-compile", action="store_true", help="leave out torch-compile")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--window", type=float, default=0.4, help="seconds per timing window")
    p.add_argument("--repeats", type=int, default=5, help="windows per backend")
    p.add_argument("--json", metavar="PATH", help="also write the figures and run metadata here")
    args = p.parse_args()
    backends = [b for b in args.backends if not (args.no_compile and b == "torch-compile")]
    load_before = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else None
    figures = []
    for case in args.cases:
        exp = experiment(case, args.dtype)
        built = {}
        for b in backends:
            be, compile_s = make(exp, b, max(args.threads))
            built[b] = [be, compile_s, 0]  # backend, compile seconds, next step
            print(f"# {case} {b}: compile {compile_s:.2f} s", file=sys.stderr, flush=True)
        for threads in args.threads:
            per_window, samples = {}, {b: [] for b in backends}
            warmup = {}
            for b in backends:  # warm-up, and the steps per window from a short timing
                set_threads(b, threads)
                be, _, step = built[b]
                warmup[b] = be.train_steps(step, 2)
                t0 = time.perf_counter()
                warmup[b] += be.train_steps(step + 2, 3)
                per_step = (time.perf_counter() - t0) / 3
                per_window[b] = max(1, int(args.window / max(per_step, 1e-6)))
                built[b][2] = step + 5
            if threads == args.threads[0] and {"torch", "torch-compile"} <= set(backends):
                # the same first 5 steps from the same weights: compiled code must train what eager does
                worst = max(abs(c - e) / abs(e) for c, e in zip(warmup["torch-compile"], warmup["torch"]))
                print(f"# {case}: torch-compile vs eager, first 5 losses, max relative difference {worst:.1e}",
                      file=sys.stderr)
                if worst > (1e-4 if args.dtype == "float32" else 1e-10):
                    print(f"error: {case}: compiled and eager torch steps disagree ({worst:.1e})", file=sys.stderr)
                    return 1
            for _ in range(args.repeats):
                for b in backends:  # round robin: one window of each in turn
                    set_threads(b, threads)
                    be, _, step = built[b]
                    k = per_window[b]
                    tokens = sum(step_positions(exp, step, k))
                    t0 = time.perf_counter()
                    be.train_steps(step, k)
                    samples[b].append(tokens / (time.perf_counter() - t0))
                    built[b][2] = step + k
            for b in backends:
                s = samples[b]
                figures.append(Figure(case, b, threads, args.dtype, statistics.median(s), min(s), max(s), len(s),
                                      per_window[b], built[b][1]))
                print(f"# {case} {b} t{threads}: {statistics.median(s):,.0f} tok/s", file=sys.stderr, flush=True)
    load_after = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else None
    print(f"{args.dtype}, tokens/s: median of {args.repeats} windows of ~{args.window} s (lowest-highest); "
          f"load average before {load_before}, after {load_after}")
    print()
    print("| case | backend | threads | tokens/s | low-high | compile s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for f in figures:
        print(f"| {f.case} | {f.backend} | {f.threads} | {f.tokens_per_s:,.0f} | {f.low:,.0f}-{f.high:,.0f} "
              f"| {f.compile_s:.1f} |")
    if args.json:
        meta = run_metadata()
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"figures": [asdict(f) for f in figures], "load": [load_before, load_after],
                       "metadata": meta}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
