"""The benchmark report: python -m microgpt.report --sweep thread_sweep.json [--kernels ...] [--pyperf ...]

Reads what the benchmark tools wrote and writes reports/<date>-<commit>/report.md
with PNG plots beside it (and, with --latest, the same into reports/latest/):

    --sweep     scripts/thread_sweep.py JSON: steps/s, tokens/s, GFLOP/s per backend x dtype x threads
    --kernels   pytest-benchmark JSON (`pytest tests/benchmarks --benchmark-only --benchmark-json F`)
    --pyperf    scripts/pyperf_train.py JSON files (mean +- std of one step, per file)
    --losses    loss curves per backend (scripts/make_report.py writes them)
    --asv       an asv results folder (default .asv/results when it exists): the latest run's training numbers
    --scaling   scripts/scale_sweep.py JSON: the Scaling section (microgpt/report/scaling.py) and its plots
    --quality   scripts/pareto.py JSON: the Quality per second section (microgpt/report/quality.py) and its plot

The matmul peak behind MFU is the one the sweep probed before its runs (its
`peaks_gflops`), or --peaks-json; the report never probes one itself, since a
peak measured at another moment does not describe the machine the sweep timed.
scripts/make_report.py runs every tool and then this; docs/benchmarking.md
says what each number means.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys

from .. import machine
from ..errors import MicrogptError
from ..output_path import check_folder
from .document import write_report
from .results import load_json

ROOT = machine.ROOT


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
    meta = machine.run_metadata()
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
