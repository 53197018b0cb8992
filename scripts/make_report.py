"""Run every benchmark tool, then write the report: reports/<date>-<commit>/report.md (and reports/latest/).

    python scripts/make_report.py --latest            # the committed reports/latest/ (~15-20 min on 2 cores)
    python scripts/make_report.py --quick             # a smoke test of the whole pipeline (~3 min)
    python scripts/make_report.py --pyperf --latest   # also pyperf (adds ~5 min)

In order, each tool in its own process:

1. scripts/thread_sweep.py: every backend x dtype x BLAS threads x Numba threads (x layer);
2. pytest tests/benchmarks --benchmark-only --benchmark-json: kernels and one training step,
   every result checked; with 1 BLAS and 1 Numba thread unless --kernel-threads says otherwise;
3. loss curves: each backend x dtype trains names from the same weights on the reference
   schedule (python for fewer steps: it is ~1000x slower);
4. scripts/pyperf_train.py (with --pyperf);
5. python -m microgpt.report on all of the above, the newest asv results in .asv/results
   if there are any, and a matmul peak probe it runs itself.

The raw JSON of each tool is kept in the report's data/ folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from microgpt import perf, report  # noqa: E402
from microgpt.backends import REGISTRY, get_backend_class, is_available  # noqa: E402

THREAD_ONE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/make_report.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latest", action="store_true", help="also replace reports/latest/ with this report")
    p.add_argument("--quick", action="store_true", help="few steps, fewer settings: checks the pipeline, "
                   "not for publishing")
    p.add_argument("--scenarios", nargs="+", default=["names", "alice"], help="for the thread sweep")
    p.add_argument("--pyperf", action="store_true", help="also run scripts/pyperf_train.py (--fast)")
    p.add_argument("--loss-steps", type=int, default=1000, help="loss-curve steps, array backends (default 1000)")
    p.add_argument("--python-loss-steps", type=int, default=200, help="loss-curve steps, python (default 200)")
    p.add_argument("--kernel-threads", type=int, default=1, help="BLAS and Numba threads for the kernel "
                   "benchmarks (default 1)")
    p.add_argument("--skip-sweep", metavar="JSON", help="use this thread-sweep JSON instead of running the sweep")
    p.add_argument("--reports", default=os.path.join(ROOT, "reports"))
    p.add_argument("--loss-worker", nargs=4, metavar=("BACKEND", "DTYPE", "STEPS", "OUT"), help=argparse.SUPPRESS)
    return p


def run(cmd: list[str], env: dict | None = None, what: str = "") -> None:
    print(f"== {what or ' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})})
    print(f"== done in {time.perf_counter() - t0:.0f} s (exit code {proc.returncode})", flush=True)
    if proc.returncode:
        raise SystemExit(f"error: {what or cmd[0]} failed with exit code {proc.returncode}")


def loss_worker(backend: str, dtype: str, steps: int, out: str) -> None:
    """Train names from the reference weights on the reference schedule; write the losses."""
    exp = perf.bench_experiment("names", dtype)
    be = exp.make_backend(backend)
    be.compile()
    losses = be.train_steps(0, steps)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"backend": backend, "dtype": dtype, "data": exp.dataset.source, "losses": losses,
                   "threads": perf.thread_settings()}, f)


def loss_curves(args, work: str) -> str:
    curves, data = {}, None
    for backend in REGISTRY:
        if not is_available(backend):
            continue
        for dtype in ("float64", "float32"):
            if dtype not in get_backend_class(backend).dtypes:
                continue
            steps = args.python_loss_steps if backend == "python" else args.loss_steps
            if args.quick:
                steps = min(steps, 20 if backend == "python" else 100)
            out = os.path.join(work, f"loss-{backend}-{dtype}.json")
            run([sys.executable, __file__, "--loss-worker", backend, dtype, str(steps), out], THREAD_ONE,
                f"loss curve: {backend} {dtype}, {steps} steps")
            with open(out, encoding="utf-8") as f:
                result = json.load(f)
            curves[f"{backend} {dtype}"] = result["losses"]
            data = result["data"]
    path = os.path.join(work, "loss_curves.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"what": f"names scenario, seed 42, the reference schedule (num_steps 1000), batch 1, data: {data}; "
                   "1 thread each.", "curves": curves}, f)
    return path


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.loss_worker:
        backend, dtype, steps, out = args.loss_worker
        loss_worker(backend, dtype, int(steps), out)
        return 0

    with tempfile.TemporaryDirectory(prefix="microgpt-report-") as work:
        if args.skip_sweep:
            sweep = args.skip_sweep
        else:
            sweep = os.path.join(work, "thread_sweep.json")
            run([sys.executable, "scripts/thread_sweep.py", "--scenarios", *args.scenarios, "-o", sweep]
                + (["--quick"] if args.quick else []), what="thread sweep")

        kernels = os.path.join(work, "pytest_benchmark.json")
        n = str(args.kernel_threads)
        run([sys.executable, "-m", "pytest", "tests/benchmarks", "--benchmark-only", f"--benchmark-json={kernels}",
             "-q", "-p", "no:cacheprovider"]
            + (["--benchmark-max-time=0.2", "--benchmark-min-rounds=3"] if args.quick else []),
            {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n, "NUMBA_NUM_THREADS": n},
            "kernel and training-step benchmarks (pytest-benchmark)")

        losses = loss_curves(args, work)

        pyperf_files = []
        if args.pyperf:
            pyperf_out = os.path.join(work, "pyperf_train.json")
            run([sys.executable, "scripts/pyperf_train.py", "--fast", "-o", pyperf_out] + (["--debug-single-value"] if args.quick else []),
                what="pyperf")
            pyperf_files.append(pyperf_out)

        reproduce = ["pip install -e '.[all]'",
                     "export MICROGPT_DATA_DIR=../shared/data   # or let the scripts find ../shared/data",
                     "python scripts/make_report.py --latest" + (" --pyperf" if args.pyperf else "")
                     + (" --quick" if args.quick else "")]
        report_args = ["--sweep", sweep, "--kernels", kernels, "--losses", losses, "--reports", args.reports,
                       "--reproduce", *reproduce]
        if pyperf_files:
            report_args += ["--pyperf", *pyperf_files]
        if args.latest:
            report_args.append("--latest")
        print("== report", flush=True)
        return report.main(report_args)


if __name__ == "__main__":
    sys.exit(main())
