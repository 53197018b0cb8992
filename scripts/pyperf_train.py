"""One training step per backend, timed by pyperf in fresh worker processes.

    python scripts/pyperf_train.py -o before.json                  # every installed backend, both dtypes, names
    python scripts/pyperf_train.py --backends numpy fused --dtypes float32 --fast -o after.json
    python -m pyperf compare_to before.json after.json --table

pyperf runs each benchmark in many short-lived worker processes (20 by
default, `--fast` halves that) so that one process's luck (memory layout,
another program on the other core) averages out, and reports mean +- std.
Each benchmark is "train_step <scenario> <backend> <dtype>", so files from
two commits or two thread settings compare name by name.

pyperf starts its workers with a clean environment; this script adds
`--inherit-environ` for the thread variables (OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, NUMBA_NUM_THREADS,
NUMBA_THREADING_LAYER, OMP_WAIT_POLICY), MICROGPT_DATA_DIR and NUMBA_CACHE_DIR
unless you pass your own, and records them, with Numba's threading layer as
the worker saw it, in each benchmark's metadata (`python -m pyperf metadata`).

A worker builds and compiles its backend and runs two steps before pyperf
times anything; a timed value is `loops` consecutive steps, run in
train_steps() calls of microgpt.bench.STEP_CHUNK steps as every tool here
times them, divided by `loops`. The schedule's horizon is pushed far away so
the learning rate stays at its peak however many steps pyperf asks for.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pyperf  # noqa: E402

from microgpt.bench import LONG_RUN, STEP_CHUNK, bench_experiment, train_chunked  # noqa: E402
from microgpt.machine import git_commit  # noqa: E402
from microgpt.threads import THREAD_VARS, thread_settings  # noqa: E402
from microgpt.backends.registry import DTYPES, REGISTRY, skip_reason  # noqa: E402
from microgpt.config import load_scenario  # noqa: E402
from microgpt.errors import MicrogptError  # noqa: E402
from microgpt.output_path import check_file  # noqa: E402

INHERITED = THREAD_VARS + ("MICROGPT_DATA_DIR", "NUMBA_CACHE_DIR")


def add_cmdline_args(cmd, args):
    """What a worker needs of our own options (pyperf passes its own)."""
    cmd += ["--scenario", args.scenario, "--backends", *args.backends, "--dtypes", *args.dtypes]


def with_inherited_environ(argv: list[str]) -> list[str]:
    if any(a == "--inherit-environ" or a.startswith("--inherit-environ=") for a in argv):
        return argv
    return argv + [f"--inherit-environ={','.join(INHERITED)}"]


def cases(args) -> list[tuple[str, str]]:
    """(backend, dtype) pairs to time, in a fixed order (the worker task index depends on it)."""
    out = []
    for backend in args.backends:
        for dtype in args.dtypes:
            out.append((backend, dtype))
    return out


def setup(backend: str, dtype: str, scenario: str):
    # bench_data_file searches $MICROGPT_DATA_DIR, then ../shared/data beside this checkout (ROOT is first on sys.path)
    exp = bench_experiment(scenario, dtype, num_steps=LONG_RUN)
    be = exp.make_backend(backend)
    be.compile()
    be.train_steps(0, 2)
    return exp, be


def make_time_func(be):
    state = {"step": 2}

    def time_steps(loops):
        # `loops` steps in calls of STEP_CHUNK, as every tool here times a step (not `loops` in one call)
        t0 = time.perf_counter()
        train_chunked(be, state["step"], loops)
        dt = time.perf_counter() - t0
        state["step"] += loops
        return dt

    return time_steps


def metadata(backend: str, dtype: str, scenario: str, exp=None) -> dict:
    th = thread_settings()
    meta = {"microgpt_backend": backend, "microgpt_dtype": dtype, "microgpt_scenario": scenario,
            "numba_threading_layer": str(th["numba_threading_layer"]),
            "numba_num_threads": str(th["numba_num_threads"])}
    meta.update({f"env_{k}": v for k, v in th["env"].items() if v is not None})
    commit = git_commit()
    if commit["commit"]:
        meta["microgpt_commit"] = commit["commit"][:12] + ("+dirty" if commit["dirty"] else "")
    if exp is not None:
        meta["microgpt_data"] = exp.dataset.source
    return meta


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    p = runner.argparser
    p.prog, p.description = "python scripts/pyperf_train.py", __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--scenario", default="names", help="configs/<scenario>.json (default names)")
    p.add_argument("--backends", nargs="+", default=[b for b in REGISTRY], choices=list(REGISTRY),
                   help="default: every backend (those not installed are skipped)")
    p.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    args = runner.parse_args(with_inherited_environ(sys.argv[1:]))
    if args.output and not args.worker:  # pyperf writes it, at the end: say now if it cannot
        try:
            check_file(args.output, "-o")
        except MicrogptError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    block_size = load_scenario(args.scenario).model.block_size
    task = 0
    for backend, dtype in cases(args):
        reason = skip_reason(backend, dtype, block_size)
        if reason:
            if not args.worker:
                print(f"skipped {backend} {dtype}: {reason}", file=sys.stderr)
            continue
        name = f"train_step {args.scenario} {backend} {dtype}"
        # pyperf's manager never calls the function, and a worker runs one task: set up only there
        mine = args.worker and args.worker_task in (None, task)
        if mine:
            exp, be = setup(backend, dtype, args.scenario)
            runner.bench_time_func(name, make_time_func(be), metadata=metadata(backend, dtype, args.scenario, exp))
        else:
            runner.bench_time_func(name, None, metadata=metadata(backend, dtype, args.scenario))
        task += 1


if __name__ == "__main__":
    main()
