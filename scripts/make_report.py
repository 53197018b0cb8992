"""Run every benchmark tool, then write the report: reports/<date>-<commit>/report.md (and reports/latest/).

    python scripts/make_report.py --full --latest     # everything, into reports/latest/ (~5 min on 2 cores)
    python scripts/make_report.py --latest            # without pyperf and asv
    python scripts/make_report.py --quick --full      # a smoke test of the whole pipeline (~2-3 min)

In order, each tool in its own process:

1. scripts/thread_sweep.py: every backend x dtype x BLAS threads x Numba threads (x layer);
2. pytest tests/benchmarks --benchmark-only --benchmark-json: kernels and one training step,
   every result checked; with 1 BLAS and 1 Numba thread unless --kernel-threads says otherwise;
3. loss curves: each backend x dtype trains names from the same weights on the reference
   schedule (python for fewer steps: it is ~1000x slower);
4. scripts/pyperf_train.py --fast, 1 thread (with --pyperf);
5. asv's training benchmarks at HEAD, saved to .asv/results (with --asv);
6. python -m microgpt.report on all of the above, the newest asv results in .asv/results
   if there are any, and the matmul peak the thread sweep probed before its runs.

The long sweeps run apart (hours for the full grids) and are picked up when their results are
in reports/latest/data/: scripts/scale_sweep.py's scale.json (or --quick's scale_quick.json)
becomes the Scaling section, scripts/pareto.py's pareto.json the Quality per second section.

--full is --pyperf --asv.

The raw JSON of each tool is kept in the report's data/ folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from microgpt.bench import bench_experiment  # noqa: E402
from microgpt.threads import thread_env, thread_settings  # noqa: E402
from microgpt.backends.registry import DTYPES, REGISTRY, is_available  # noqa: E402
from microgpt.errors import MicrogptError  # noqa: E402
from microgpt.report import command_line as report  # noqa: E402

THREAD_ONE = thread_env(1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/make_report.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latest", action="store_true", help="also replace reports/latest/ with this report")
    p.add_argument("--quick", action="store_true", help="few steps, fewer settings: checks the pipeline, "
                   "not for publishing")
    p.add_argument("--scenarios", nargs="+", default=["names", "alice"], help="for the thread sweep")
    p.add_argument("--pyperf", action="store_true", help="also run scripts/pyperf_train.py (--fast)")
    p.add_argument("--asv", action="store_true", help="also run asv's training benchmarks on this checkout "
                   "(asv run --python=same --set-commit-hash HEAD --bench training)")
    p.add_argument("--full", action="store_true", help="everything: --pyperf --asv")
    p.add_argument("--loss-steps", type=int, default=1000, help="loss-curve steps, array backends (default 1000)")
    p.add_argument("--python-loss-steps", type=int, default=200, help="loss-curve steps, python (default 200)")
    p.add_argument("--kernel-threads", type=int, default=1, help="BLAS and Numba threads for the kernel "
                   "benchmarks (default 1)")
    p.add_argument("--skip-sweep", metavar="JSON", help="use this thread-sweep JSON instead of running the sweep")
    p.add_argument("--reports", default=os.path.join(ROOT, "reports"))
    p.add_argument("--scaling", metavar="JSON", help="scripts/scale_sweep.py results for the Scaling section "
                   "(default: reports/latest/data/scale.json, else scale_quick.json, when there)")
    p.add_argument("--quality", metavar="JSON", help="scripts/pareto.py results for the Quality per second "
                   "section (default: reports/latest/data/pareto.json, when there)")
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
    exp = bench_experiment("names", dtype)
    be = exp.make_backend(backend)
    be.compile()
    losses = be.train_steps(0, steps)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"backend": backend, "dtype": dtype, "data": exp.dataset.source, "losses": losses,
                   "threads": thread_settings()}, f)


def loss_curves(args, work: str) -> str:
    curves, data = {}, None
    for backend in REGISTRY:
        if not is_available(backend):
            continue
        for dtype in DTYPES:
            if dtype not in REGISTRY[backend].dtypes:
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


def run_asv(quick: bool) -> None:
    """asv's training benchmarks on this checkout, saved under HEAD's hash in .asv/results (the report reads them)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode:
        raise SystemExit("error: --asv needs a git checkout (asv labels results with a commit)")
    if not os.path.exists(os.path.expanduser("~/.asv-machine.json")):
        subprocess.run([sys.executable, "-m", "asv", "machine", "--yes"], cwd=ROOT, capture_output=True)
    cmd = [sys.executable, "-m", "asv", "run", "--python=same", "--set-commit-hash", head.stdout.strip(),
           "--bench", r"training\."]
    run(cmd + (["-a", "repeat=1", "-a", "rounds=1"] if quick else []), what="asv training benchmarks")


def found_sweep(reports: str, *names: str) -> str | None:
    """The first of the long sweeps' result files that the latest report folder holds (they run apart, for hours)."""
    for name in names:
        path = os.path.join(reports, "latest", "data", name)
        if os.path.isfile(path):
            return path
    return None


def copy_into(path: str, work: str) -> str:
    """A copy in the work folder: --latest replaces reports/latest/, where the original may lie."""
    dest = os.path.join(work, os.path.basename(path))
    shutil.copyfile(path, dest)
    return dest


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.full:
        args.pyperf = args.asv = True
    if args.loss_worker:
        backend, dtype, steps, out = args.loss_worker
        loss_worker(backend, dtype, int(steps), out)
        return 0
    try:
        report.check_folders(args.reports, args.latest)
    except MicrogptError as e:
        raise SystemExit(f"error: {e}") from None

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
            # quick: 2 worker processes of 2 values (pyperf's --debug-single-value loses to --fast)
            run([sys.executable, "scripts/pyperf_train.py", "-q", "-o", pyperf_out]
                + (["-p", "2", "-n", "2", "-w", "1"] if args.quick else ["--fast"]), THREAD_ONE, "pyperf, 1 thread")
            pyperf_files.append(pyperf_out)

        if args.asv:
            run_asv(args.quick)

        reproduce = ["pip install -e '.[all]'",
                     "export MICROGPT_DATA_DIR=../shared/data   # or let the scripts find ../shared/data",
                     "python scripts/make_report.py --latest" + (" --full" if args.pyperf and args.asv else
                                                                 " --pyperf" if args.pyperf else
                                                                 " --asv" if args.asv else "")
                     + (" --quick" if args.quick else "")]
        report_args = ["--sweep", sweep, "--kernels", kernels, "--losses", losses, "--reports", args.reports,
                       "--reproduce", *reproduce]
        if pyperf_files:
            report_args += ["--pyperf", *pyperf_files]
        for flag, path in (("--scaling", args.scaling or found_sweep(args.reports, "scale.json", "scale_quick.json")),
                           ("--quality", args.quality or found_sweep(args.reports, "pareto.json"))):
            if path:
                report_args += [flag, copy_into(path, work)]
        if args.latest:
            report_args.append("--latest")
        print("== report", flush=True)
        return report.main(report_args)


if __name__ == "__main__":
    sys.exit(main())
