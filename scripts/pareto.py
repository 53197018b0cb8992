"""Quality per second: the validation loss a backend reaches in a wall-clock training budget.

    python scripts/pareto.py --quick                      # a smoke run: 2 widths x 2 budgets
    python scripts/pareto.py                              # budgets 1..600 s, widths 16..128
    python scripts/pareto.py --backends fused,torch --threads 1,2 --budgets 1,10,60

Each point is one `python -m microgpt.train --time-budget B` run in its own process (so compile
is excluded as training excludes it, and every point starts cold in the same way) on the
scenario with the model width and batch overridden. After the run the saved model.json is read
back and both losses are recomputed in float64 by one backend for every point: the validation
loss on the held-out documents of SPEC §2 (never trained on) and the training loss on the first
1000 training documents, so over-fitting shows as the two part. The results go to --out as JSON
(one record a point, with the machine and thread settings); a point already there is not run
again, so a stopped sweep continues where it was. The report's "Quality per second" section and
the plot come from that file (`--plot PNG`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from microgpt import checkpoint  # noqa: E402
from microgpt.machine import run_metadata  # noqa: E402
from microgpt.threads import thread_env  # noqa: E402
from microgpt.report.quality import plot, print_table  # noqa: E402
from microgpt.backends.registry import available_backends, resolve_name  # noqa: E402
from microgpt.cli import format_duration, run_main  # noqa: E402
from microgpt.config import load_scenario, with_sizes  # noqa: E402
from microgpt.errors import MicrogptError  # noqa: E402
from microgpt.experiment import prepare  # noqa: E402
from microgpt.output_path import check_file, write_json  # noqa: E402

FULL_BUDGETS = (1, 3, 10, 30, 60, 180, 600)
FULL_WIDTHS = (16, 32, 64, 128)
QUICK_BUDGETS, QUICK_WIDTHS = (1, 3), (16, 32)
TRAIN_EVAL_DOCS = 1000
DEFAULT_OUT = os.path.join("reports", "latest", "data", "pareto.json")
# the float64 recomputation of every point's losses: one backend, whichever trained the point
EVAL_BACKENDS = ("numpy_batched", "python")


@dataclass(frozen=True)
class Point:
    backend: str
    n_embd: int
    budget_s: float
    threads: int

    @property
    def key(self) -> str:
        return f"{self.backend}/C{self.n_embd}/{self.budget_s:g}s/t{self.threads}"


@dataclass
class Result:
    point: Point
    status: str  # "ok", or what went wrong: "diverged", "failed: ..."
    steps: int | None = None
    wall_s: float | None = None  # measuring + training, compile excluded
    compile_s: float | None = None
    val_loss: float | None = None  # as train printed it
    val_loss_f64: float | None = None  # recomputed from model.json in float64
    train_loss_f64: float | None = None
    num_params: int | None = None
    data: str | None = None  # the dataset's source: names.txt and the census fallback are not comparable


def parse_list(text: str, kind, flag: str) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise MicrogptError(f"{flag}: expected a comma-separated list of numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise MicrogptError(f"{flag}: expected one or more positive numbers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/pareto.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", "-s", default="names", help="configs/<scenario>.json (default names)")
    p.add_argument("--backends", help="comma-separated (default: fused and torch, those installed)")
    p.add_argument("--widths", help=f"n_embd values (default {','.join(map(str, FULL_WIDTHS))})")
    p.add_argument("--budgets", help=f"seconds of training (default {','.join(map(str, FULL_BUDGETS))})")
    p.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    p.add_argument("--n-head", type=int, default=4, help="heads at every width (default 4)")
    p.add_argument("--n-layer", type=int, default=2, help="layers (default 2)")
    p.add_argument("--batch-size", type=int, default=32, help="documents per step (default 32)")
    p.add_argument("--learning-rate", type=float, help="overrides training.learning_rate")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="default float32")
    p.add_argument("--quick", action="store_true", help=f"widths {QUICK_WIDTHS}, budgets {QUICK_BUDGETS}")
    p.add_argument("--data", metavar="PATH", help="the data file (default: as training finds it)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="PATH", help=f"results JSON (default {DEFAULT_OUT})")
    p.add_argument("--plot", metavar="PNG", help="also draw the loss-against-time plot here")
    return p


def default_backends() -> list[str]:
    installed = available_backends()
    return [b for b in ("fused", "torch") if b in installed] or [resolve_name("auto")]


def point_config(args, width: int) -> dict:
    if width % args.n_head:
        raise MicrogptError(f"--widths: {width} is not divisible by --n-head {args.n_head}")
    cfg = with_sizes(load_scenario(args.scenario), {"n_embd": width, "n_head": args.n_head, "n_layer": args.n_layer,
                                                    "batch_size": args.batch_size})
    d = cfg.to_dict()
    d["name"] = f"{cfg.name}_pareto"
    d["training"].update(dtype=args.dtype, time_budget=None)
    if args.learning_rate is not None:
        d["training"]["learning_rate"] = args.learning_rate
    d["sampling"]["num_samples"] = 1
    return d


def run_point(args, point: Point, workdir: str) -> Result:
    config = os.path.join(workdir, f"{point.key.replace('/', '_')}.json")
    with open(config, "w") as f:
        json.dump(point_config(args, point.n_embd), f)
    model = config.replace(".json", ".model.json")
    cmd = [sys.executable, "-m", "microgpt.train", "--config", config, "--backend", point.backend,
           "--time-budget", f"{point.budget_s:g}", "--quiet", "-o", model]
    if args.data:
        cmd += ["--data", args.data]
    env = {**os.environ, **thread_env(point.threads), "PYTHONPATH": ROOT}
    # the run's own budget plus room for compiling, loading data and the validation pass
    limit = point.budget_s * 3 + 300
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return Result(point, f"timed out after {limit:g} s")
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return Result(point, "diverged" if "became" in last or "overflowed" in last else f"failed: {last}")
    res = Result(point, "ok")
    if m := re.search(r"^trained (\d+) steps in ", out, re.M):
        res.steps = int(m.group(1))
    if m := re.search(r"^time budget \S+ s: spent ([\d.]+) s", out, re.M):
        res.wall_s = float(m.group(1))
    if m := re.search(r"^val loss: (\d+\.\d+)", out, re.M):
        res.val_loss = float(m.group(1))
    if m := re.search(r"^compiled in ([\d.]+) s", out, re.M):
        res.compile_s = float(m.group(1))
    res.val_loss_f64, res.train_loss_f64, res.num_params, res.data = recompute_losses(model, args.data)
    return res


def recompute_losses(model_path: str, data: str | None) -> tuple[float, float, int, str]:
    """Both losses of a saved model, in float64, on the run's own split: one code path for every backend."""
    ckpt = checkpoint.load(model_path)
    evaluator = next(b for b in EVAL_BACKENDS if b in available_backends())
    cfg = ckpt.config.replace("training", backend=evaluator, dtype="float64")
    exp = prepare(cfg, data, quiet=True)
    exp.weights = ckpt.weights
    backend = exp.make_backend()
    return (backend.eval_loss(exp.val_tokens), backend.eval_loss(exp.train_tokens[:TRAIN_EVAL_DOCS]),
            exp.num_params, exp.dataset.source)


def load_results(path: str) -> dict:
    if not os.path.exists(path):
        return {"points": {}}
    try:
        with open(path) as f:
            doc = json.load(f)
        assert isinstance(doc.get("points"), dict)
        return doc
    except (OSError, ValueError, AssertionError):
        raise MicrogptError(f"--out {path}: not a results file of this script; give another --out") from None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    backends = args.backends.split(",") if args.backends else default_backends()
    for b in backends:
        resolve_name(b)  # an unknown or uninstalled backend is one line, before any run
    widths = parse_list(args.widths, int, "--widths") if args.widths else list(
        QUICK_WIDTHS if args.quick else FULL_WIDTHS)
    budgets = parse_list(args.budgets, float, "--budgets") if args.budgets else list(
        QUICK_BUDGETS if args.quick else FULL_BUDGETS)
    threads = parse_list(args.threads, int, "--threads")
    for w in widths:
        point_config(args, w)  # an impossible width fails now, not an hour in
    check_file(args.out, "--out")
    if args.plot:
        check_file(args.plot, "--plot")

    doc = load_results(args.out)
    doc["meta"] = run_metadata()
    doc["settings"] = {"scenario": args.scenario, "n_head": args.n_head, "n_layer": args.n_layer,
                       "batch_size": args.batch_size, "dtype": args.dtype, "learning_rate": args.learning_rate}
    points = [Point(b, w, s, t) for b in backends for t in threads for w in widths for s in budgets]
    todo = [p for p in points if p.key not in doc["points"]]
    print(f"{len(points)} points, {len(points) - len(todo)} already in {args.out}, {len(todo)} to run")
    left_s = sum(p.budget_s for p in todo)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pareto-") as workdir:
        for i, point in enumerate(todo, 1):
            res = run_point(args, point, workdir)
            doc["points"][point.key] = asdict(res)
            write_json(args.out, doc, "--out")  # after every point: a killed sweep loses one point at most
            left_s -= point.budget_s
            # a point costs its budget plus a start-up (data, cache load, evaluation) measured so far
            startup_s = (time.perf_counter() - t0 - sum(p.budget_s for p in todo[:i])) / i
            eta = left_s + startup_s * (len(todo) - i)
            loss = f"val {res.val_loss_f64:.4f} train {res.train_loss_f64:.4f}" if res.status == "ok" else res.status
            print(f"[{i}/{len(todo)}] {point.key}: {loss} ({res.steps} steps) | ETA {format_duration(eta)}",
                  flush=True)
    print_table(doc)
    if args.plot:
        plot(doc, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
