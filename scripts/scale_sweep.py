"""How the cost of training grows with the model: every backend over a grid of sizes, side by side.

    python scripts/scale_sweep.py --quick          # benchmarks/grids/quick.json: a few minutes
    python scripts/scale_sweep.py                  # benchmarks/grids/scale.json: hours; stop and rerun at will
    python scripts/scale_sweep.py --grid my.json --out /tmp/scale.json

A grid file names a centre point, axes swept one at a time through it, extra points (the
scenarios), the backends, dtypes and thread counts. Every point runs in a fresh process with the
thread variables set for it, on the scenario's real data (or the benchmarks' synthetic corpus),
with the schedule's horizon far away so the learning rate stays near its peak. A point trains
`windows` windows of at least `window_s` seconds each, after one warm-up window, and records:
tokens/s (median of the windows, with p10/p90), µs per token, model GFLOP/s (flops_for_docs:
6 x matmul weights + the causal half of the attention square) and MFU against the matmul peak
measured in the same sweep, peak memory (max RSS), the warm start (process start to the first
step done, Numba's cache warm) and, once per backend and dtype, the cold compile (an empty
NUMBA_CACHE_DIR). The machine's roofs (matmul peak f32/f64 at 1 and all threads, triad
bandwidth) are measured at the start and stored with the points. Results are saved after every
point: a killed sweep continues where it was. A point that diverges, fails or passes
`point_cap_s` is recorded as such, never dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

PROCESS_START = time.perf_counter()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from microgpt import auto_choice, params  # noqa: E402
from microgpt.bench import LONG_RUN, bench_dataset, percentile, step_positions  # noqa: E402
from microgpt.flops import flops_for_docs  # noqa: E402
from microgpt.machine import cpu_model, probe_peaks, run_metadata  # noqa: E402
from microgpt.threads import thread_env, thread_settings, usable_cores  # noqa: E402
from microgpt.backends.registry import REGISTRY, available_backends, is_available, unavailable_reason  # noqa: E402
from microgpt.cli import format_duration, run_main  # noqa: E402
from microgpt.config import (DTYPES, SIZE_KEYS, ModelConfig, load_scenario, scenario_names, sizes_of,  # noqa: E402
                             with_sizes)
from microgpt.errors import MicrogptError  # noqa: E402
from microgpt.output_path import check_file, write_json  # noqa: E402

GRIDS = os.path.join(ROOT, "benchmarks", "grids")
DEFAULT_GRID, QUICK_GRID = os.path.join(GRIDS, "scale.json"), os.path.join(GRIDS, "quick.json")
DEFAULT_OUT = os.path.join("reports", "latest", "data", "scale.json")
AUTO_TABLE = auto_choice.TABLE
# sweep names beyond the registry's: torch with its step compiled by torch.compile
VARIANTS = {"torch_compile": ("torch", {"compile": True})}
GRID_KEYS = {"description": str, "centre": dict, "axes": dict, "extra": list, "backends": list,
             "optional_backends": list, "python_max_params": int, "dtypes": list, "threads": list,
             "window_s": (int, float), "windows": int, "point_cap_s": (int, float)}


@dataclass(frozen=True)
class Point:
    label: str  # "n_embd=128", or an extra point's label
    scenario: str
    n_embd: int
    n_head: int
    n_layer: int
    block_size: int
    batch_size: int
    backend: str  # a registry name or a VARIANTS name
    dtype: str
    threads: int

    @property
    def key(self) -> str:
        return f"{self.label}|{self.backend}|{self.dtype}|t{self.threads}"

    @property
    def size(self) -> str:
        return f"{self.n_embd}/{self.n_head}/{self.n_layer}/{self.block_size} b{self.batch_size}"


# -- the grid file ----------------------------------------------------------------------


def backend_of(name: str) -> str:
    return VARIANTS[name][0] if name in VARIANTS else name


def load_grid(path: str) -> dict:
    where = f"--grid {path}"
    try:
        with open(path, encoding="utf-8") as f:
            grid = json.load(f)
    except FileNotFoundError:
        raise MicrogptError(f"{where}: no such file") from None
    except (OSError, ValueError) as e:
        raise MicrogptError(f"{where}: cannot read it as JSON ({e})") from None
    if not isinstance(grid, dict):
        raise MicrogptError(f"{where}: the top level must be an object")
    for key, value in grid.items():
        if key not in GRID_KEYS:
            raise MicrogptError(f"{where}: {key}: unknown key (known: {', '.join(GRID_KEYS)})")
        if not isinstance(value, GRID_KEYS[key]) or isinstance(value, bool):
            raise MicrogptError(f"{where}: {key}: expected {getattr(GRID_KEYS[key], '__name__', 'a number')}")
    for key in ("centre", "backends", "dtypes", "threads"):
        if not grid.get(key):
            raise MicrogptError(f"{where}: {key}: missing or empty")
    for axis, values in grid.get("axes", {}).items():
        if axis not in SIZE_KEYS:
            raise MicrogptError(f"{where}: axes.{axis}: unknown axis (known: {', '.join(SIZE_KEYS)})")
        if not isinstance(values, list) or not values:
            raise MicrogptError(f"{where}: axes.{axis}: an axis needs one or more values")
    known = set(REGISTRY) | set(VARIANTS)
    for key in ("backends", "optional_backends"):
        for name in grid.get(key, []):
            if name not in known:
                raise MicrogptError(f"{where}: {key}: unknown backend {name!r} (known: {', '.join(sorted(known))})")
    for name in grid["backends"]:
        if not is_available(backend_of(name)):
            raise MicrogptError(f"{where}: backends: {name!r} is not installed here; install it or move it to "
                                "optional_backends")
    for d in grid["dtypes"]:
        if d not in DTYPES:
            raise MicrogptError(f"{where}: dtypes: {d!r} is not one of {', '.join(DTYPES)}")
    for t in grid["threads"]:
        if not isinstance(t, int) or isinstance(t, bool) or t < 1:
            raise MicrogptError(f"{where}: threads: {t!r} is not a thread count >= 1")
    grid.setdefault("window_s", 0.5)
    grid.setdefault("windows", 5)
    grid.setdefault("point_cap_s", 120)
    grid.setdefault("python_max_params", 20000)
    for spec in sizes(grid, where):
        check_size(spec, where)
    return grid


def sizes(grid: dict, where: str = "") -> list[dict]:
    """The grid's points before backends: the centre, each axis value through it, the extra points."""
    centre = {"label": "centre", **grid["centre"]}
    out = [centre]
    for axis, values in grid.get("axes", {}).items():
        for v in values:
            if v != centre.get(axis):
                out.append({**centre, axis: v, "label": f"{axis}={v}"})
    for i, extra in enumerate(grid.get("extra", [])):
        if not isinstance(extra, dict) or "label" not in extra:
            raise MicrogptError(f"{where}: extra[{i}]: expected an object with a label")
        out.append(extra)
    return out


def check_size(spec: dict, where: str) -> None:
    label = spec.get("label", "?")
    for key in spec:
        if key not in ("label", "scenario", *SIZE_KEYS):
            raise MicrogptError(f"{where}: point {label}: unknown key {key!r}")
    scenario = spec.get("scenario", "names")
    if scenario not in scenario_names():
        raise MicrogptError(f"{where}: point {label}: unknown scenario {scenario!r}")
    full = resolved_size(spec)
    for key in SIZE_KEYS:
        v = full[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise MicrogptError(f"{where}: point {label}: {key} must be an integer >= 1, got {v!r}")
    if full["n_embd"] % full["n_head"]:
        raise MicrogptError(f"{where}: point {label}: n_embd ({full['n_embd']}) is not divisible by "
                            f"n_head ({full['n_head']})")


def resolved_size(spec: dict) -> dict:
    """A point's sizes with the scenario's own for those it leaves out."""
    base = sizes_of(load_scenario(spec.get("scenario", "names")))
    return {**base, **{k: spec[k] for k in SIZE_KEYS if k in spec}}


def num_params(spec: dict) -> int:
    s = resolved_size(spec)
    model = ModelConfig(n_embd=s["n_embd"], n_head=s["n_head"], n_layer=s["n_layer"], block_size=s["block_size"])
    return params.num_params(model, 80)  # 80: a bound on both scenarios' vocabularies, only to cap python


def points(grid: dict) -> tuple[list[Point], dict]:
    """Every point to run, and {backend: why it is not run} for optional ones that are not installed."""
    skipped = {name: reason for name in grid.get("optional_backends", [])
               if (reason := unavailable_reason(backend_of(name)))}
    names = [*grid["backends"], *[b for b in grid.get("optional_backends", []) if b not in skipped]]
    if "python" not in names and is_available("python"):
        names.append("python")  # at the smallest points only, below
    out = []
    for spec in sizes(grid):
        s = resolved_size(spec)
        for name in names:
            if name == "python" and num_params(spec) > grid["python_max_params"]:
                continue
            for dtype in grid["dtypes"]:
                if dtype not in REGISTRY[backend_of(name)].dtypes:
                    continue
                for threads in grid["threads"]:
                    if name == "python" and threads > 1:
                        continue
                    out.append(Point(spec["label"], spec.get("scenario", "names"), s["n_embd"], s["n_head"],
                                     s["n_layer"], s["block_size"], s["batch_size"], name, dtype, threads))
    return out, skipped


# -- one point, in its own process ------------------------------------------------------


def point_config(p: Point):
    # benchmark_train's --n-embd ... --batch-size apply sizes the same way (chunks follow block_size there too)
    cfg = with_sizes(load_scenario(p.scenario), {k: getattr(p, k) for k in SIZE_KEYS})
    return cfg.replace("training", backend=backend_of(p.backend), dtype=p.dtype, num_steps=LONG_RUN)


def make_backend(p: Point, exp):
    from microgpt.backends import get_backend_class

    name, options = VARIANTS.get(p.backend, (p.backend, {}))
    if not options:
        return exp.make_backend(name)
    return get_backend_class(name)(exp.cfg, exp.tokenizer.vocab_size, exp.weights, exp.train_tokens, **options)


def measure_point(p: Point, window_s: float, windows: int, cap_s: float) -> dict:
    """Run in the point's own process: the figures of one point."""
    import resource

    from microgpt.experiment import prepare

    cfg = point_config(p)
    exp = prepare(cfg, dataset=bench_dataset(cfg), quiet=True)
    backend = make_backend(p, exp)
    compile_s = backend.compile()
    deadline = time.perf_counter() + cap_s
    step = 0
    losses = backend.train_steps(step, 1)
    step += 1
    warm_start_s = time.perf_counter() - PROCESS_START
    # size a window: steps doubling until one chunk takes a quarter of a window
    chunk = 1
    while True:
        t0 = time.perf_counter()
        losses += backend.train_steps(step, chunk)
        dt = time.perf_counter() - t0
        step += chunk
        if dt >= window_s / 4 or time.perf_counter() > deadline:
            break
        chunk *= 2
    per_window = max(1, math.ceil(chunk * window_s / max(dt, 1e-9)))
    rates, seconds, flops, tokens = [], [], 0, 0
    for w in range(windows + 1):  # the first window warms up and is not kept
        if time.perf_counter() + per_window * dt / chunk > deadline:
            return {"status": f"over the {cap_s:g} s cap after {len(rates)} windows", "compile_s": compile_s}
        lengths = step_positions(exp, step, per_window)
        t0 = time.perf_counter()
        losses += backend.train_steps(step, per_window)
        dt_w = time.perf_counter() - t0
        step += per_window
        if w:
            rates.append(sum(lengths) / dt_w)
            seconds.append(dt_w)
            tokens += sum(lengths)
            flops += flops_for_docs(cfg.model, exp.tokenizer.vocab_size, lengths)
    if not all(math.isfinite(x) for x in losses):
        return {"status": "diverged", "compile_s": compile_s}
    median = statistics.median(rates)
    return {
        "status": "ok",
        "tokens_per_s": median, "tokens_per_s_p10": percentile(rates, 0.1),
        "tokens_per_s_p90": percentile(rates, 0.9),
        "us_per_token": 1e6 / median,
        "flops_per_token": flops / tokens,
        "model_gflops_per_s": median * flops / tokens / 1e9,
        "window_s": statistics.median(seconds), "steps_per_window": per_window, "windows": len(rates),
        "compile_s": compile_s,  # with a warm cache: a cache load
        "warm_start_s": warm_start_s,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "num_params": exp.num_params,
        "threads": thread_settings(),
    }


def run_in_process(p: Point, grid: dict, extra_env: dict | None = None) -> dict:
    env = {**os.environ, **thread_env(p.threads), "PYTHONPATH": ROOT, **(extra_env or {})}
    cmd = [sys.executable, os.path.abspath(__file__), "--run-point", json.dumps(asdict(p)),
           "--window-s", str(grid["window_s"]), "--windows", str(grid["windows"]),
           "--cap-s", str(grid["point_cap_s"])]
    limit = grid["point_cap_s"] + 300  # the cap counts from the first step; data and compile come first
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"status": f"killed after {limit:g} s"}
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": f"failed: {tail[:300]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cold_compile_s(p: Point, grid: dict) -> float | None:
    """Compile with an empty Numba cache: the cost a first run pays (once per backend and dtype)."""
    with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache:
        quick = {**grid, "windows": 1, "window_s": 0.01}
        r = run_in_process(p, quick, {"NUMBA_CACHE_DIR": cache})
    return r.get("compile_s") if r.get("status") == "ok" else None


# -- the machine's roofs -------------------------------------------------------------------


def measure_roofs() -> dict:
    peaks = probe_peaks()
    roofs = {"matmul_gflops": peaks, "triad_gbytes_per_s": {}}
    cores = usable_cores()
    for threads in sorted({1, cores}):
        env = {**os.environ, **thread_env(threads), "PYTHONPATH": ROOT}
        code = f"from microgpt.bandwidth import triad_gbytes_per_s; print(triad_gbytes_per_s({threads}))"
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise MicrogptError(f"triad probe failed: {proc.stderr.strip().splitlines()[-1:]}")
        roofs["triad_gbytes_per_s"]["1" if threads == 1 else "all"] = float(proc.stdout)
    return roofs


# -- the sweep -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/scale_sweep.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", help=f"grid file (default {os.path.relpath(DEFAULT_GRID, ROOT)})")
    p.add_argument("--quick", action="store_true", help=f"the smoke grid {os.path.relpath(QUICK_GRID, ROOT)}")
    p.add_argument("--out", help=f"results JSON (default {DEFAULT_OUT}; --quick: ...scale_quick.json)")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-compile runs")
    p.add_argument("--no-roofs", action="store_true", help="skip measuring the roofs (MFU and the roofline "
                   "then have none)")
    p.add_argument("--write-auto-table", metavar="PATH", nargs="?", const=AUTO_TABLE,
                   help="reduce --out's finished points to the table `--backend auto` chooses by "
                        f"(default {os.path.relpath(AUTO_TABLE, ROOT)}) and print auto's regret at every point; "
                        "runs nothing")
    p.add_argument("--run-point", help=argparse.SUPPRESS)
    p.add_argument("--window-s", type=float, help=argparse.SUPPRESS)
    p.add_argument("--windows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cap-s", type=float, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.run_point:
        p = Point(**json.loads(args.run_point))
        print(json.dumps(measure_point(p, args.window_s, args.windows, args.cap_s)))
        return 0
    if args.grid and args.quick:
        raise MicrogptError("--grid and --quick both choose the grid; give one")
    grid_path = args.grid or (QUICK_GRID if args.quick else DEFAULT_GRID)
    out = args.out or (DEFAULT_OUT.replace("scale.json", "scale_quick.json") if args.quick else DEFAULT_OUT)
    if args.write_auto_table:
        return write_auto_table(out, args.write_auto_table)
    grid = load_grid(grid_path)
    check_file(out, "--out")
    todo_all, skipped = points(grid)
    doc = load_results(out, grid)
    if "roofs" not in doc and not args.no_roofs:
        print("measuring the machine's roofs (matmul peak, triad bandwidth) ...", flush=True)
        doc["roofs"] = measure_roofs()
        write_json(out, doc, "--out")
    doc["skipped_backends"] = skipped
    todo = [p for p in todo_all if p.key not in doc["points"]]
    print(f"{len(todo_all)} points ({len(todo_all) - len(todo)} already in {out}); "
          + (f"not run: {', '.join(f'{b} ({why})' for b, why in skipped.items())}" if skipped else "every backend"))
    t0, done = time.perf_counter(), 0
    for p in todo:
        cold_key = f"{p.backend}|{p.dtype}"
        if not args.no_cold and cold_key not in doc["cold_compile_s"] and backend_of(p.backend) != "python":
            doc["cold_compile_s"][cold_key] = cold_compile_s(p, grid)
        r = run_in_process(p, grid)
        r["point"] = asdict(p)
        r["meta"] = {"cpu": cpu_model(), "load_1min": os.getloadavg()[0]}
        doc["points"][p.key] = r
        write_json(out, doc, "--out")
        done += 1
        eta = (time.perf_counter() - t0) / done * (len(todo) - done)
        figure = (f"{r['tokens_per_s']:,.0f} tok/s ({r['tokens_per_s_p10']:,.0f}-{r['tokens_per_s_p90']:,.0f})"
                  if r["status"] == "ok" else r["status"])
        print(f"[{done}/{len(todo)}] {p.label:>16} {p.size:>18} {p.backend:>14} {p.dtype} t{p.threads}: {figure}"
              f" | ETA {format_duration(eta)}", flush=True)
    print(f"wrote {out}")
    return 0


def write_auto_table(sweep_path: str, table_path: str) -> int:
    if not os.path.exists(sweep_path):
        raise MicrogptError(f"--out {sweep_path}: no sweep results there; run the sweep first")
    with open(sweep_path, encoding="utf-8") as f:
        doc = json.load(f)
    rows = auto_choice.table_from_sweep(doc)
    if not rows:
        raise MicrogptError(f"--out {sweep_path}: no finished point to build a table from")
    write_json(table_path, {"source": os.path.relpath(sweep_path, ROOT), "cpu": doc.get("meta", {}).get("cpu"),
                            "date": doc.get("meta", {}).get("date"), "cold_compile_s": doc.get("cold_compile_s", {}),
                            "start_s": auto_choice.start_seconds(doc),
                            "rows": [asdict(r) for r in rows]},
               "--write-auto-table")
    print(f"wrote {table_path}: {len(rows)} rows from {sweep_path}")
    installed = available_backends()
    for leave_one_out in (False, True):
        regrets = auto_choice.regrets(doc, rows, installed, leave_one_out)
        worst = max(regrets, key=lambda r: r["regret"])
        what = "each point left out of the table in turn" if leave_one_out else "the table holding every point"
        print(f"auto's regret, {what}: worst {worst['regret']:.2f}x at {worst['label']} {worst['dtype']} "
              f"t{worst['threads']} (auto {worst['auto']}, fastest {worst['fastest']}); "
              f"{sum(r['regret'] <= 1.10 for r in regrets)}/{len(regrets)} points within 1.10x")
    return 0


def load_results(path: str, grid: dict) -> dict:
    fresh = {"grid": grid, "meta": run_metadata(), "points": {}, "cold_compile_s": {}}
    if not os.path.exists(path):
        return fresh
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        assert isinstance(doc, dict) and isinstance(doc.get("points"), dict)
    except (OSError, ValueError, AssertionError):
        raise MicrogptError(f"--out {path}: not a results file of this script; give another --out") from None
    doc.setdefault("cold_compile_s", {})
    return doc


if __name__ == "__main__":
    sys.exit(run_main(main))
