"""What `--backend auto` trains with: the backend a scale sweep measured fastest at the nearest point.

The table ships with the package (microgpt/auto_table.json, reduced from the committed sweep by
`python scripts/scale_sweep.py --write-auto-table`); a user's own sweep reduced the same way
replaces it through `$MICROGPT_AUTO_TABLE`. A configuration is placed by two numbers that set
a step's cost: model FLOPs per token and tokens per step (documents x mean positions). Among the
table's rows of the same dtype and the nearest thread count, the backend whose nearest row (in
log-log distance) has the most tokens/s wins, among the backends installed here. Without a
table, or with no row for the dtype, the rule is the old one: fused when Numba is installed,
else python.

A run of known length also pays for starting and compiling: the table keeps each backend's
shortest warm start in the sweep (imports: torch's cost ~0.5 s more than numpy's) and its
cold-compile seconds (an empty Numba cache), and a backend whose compilation for this run is not
in the cache yet (compile_cache.is_warm) is charged them. The default names run trains for 0.02 s
on fused and would compile it for ~30 s first; auto then takes a backend that is ready and says why.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

from .backends.registry import AUTO_ORDER
from .scale_points import groups, ok_points, started_warm, tokens_per_step

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "auto_table.json")


@dataclass(frozen=True)
class Row:
    """One finished point of a scale sweep, placed by the two numbers that set a step's cost."""
    backend: str
    dtype: str
    threads: int
    flops_per_token: float
    tokens_per_step: float
    tokens_per_s: float


@dataclass(frozen=True)
class Table:
    rows: list[Row]
    cold_compile_s: dict[str, float]  # "backend|dtype" -> seconds to compile with an empty Numba cache
    start_s: dict[str, float] = field(default_factory=dict)  # "backend|dtype" -> process start to a first step


def start_seconds(doc: dict) -> dict[str, float]:
    """"backend|dtype" -> the shortest warm start of a sweep's points (process start to the first step done,
    imports included) among those whose compile() was a cache load: what a backend costs before it trains."""
    out: dict[str, float] = {}
    for r in filter(started_warm, ok_points(doc)):
        key = f"{r['point']['backend']}|{r['point']['dtype']}"
        out[key] = min(out.get(key, math.inf), r["warm_start_s"])
    return out


def per_backend(seconds: dict[str, float], dtype: str) -> dict[str, float]:
    """A table's "backend|dtype" -> seconds, for one dtype: backend -> seconds."""
    out = {}
    for key, s in seconds.items():
        backend, _, d = key.partition("|")
        if d == dtype:
            out[backend] = s
    return out


@dataclass(frozen=True)
class Choice:
    backend: str
    reason: str


def table_path() -> str:
    """The shipped table, or the user's own sweep's through $MICROGPT_AUTO_TABLE."""
    from .envvars import file_path

    return file_path("MICROGPT_AUTO_TABLE") or TABLE


def load_table(path: str | None = None) -> Table:
    path = path or TABLE
    if not os.path.exists(path):
        return Table([], {})
    from .errors import MicrogptError

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        return Table([Row(**r) for r in doc["rows"]],
                     {str(k): float(v) for k, v in doc.get("cold_compile_s", {}).items() if v is not None},
                     {str(k): float(v) for k, v in doc.get("start_s", {}).items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise MicrogptError(f"{path}: not an auto-choice table ({type(e).__name__}: {e}); "
                            "rebuild it with scripts/scale_sweep.py --write-auto-table") from None


def table_from_sweep(doc: dict) -> list[Row]:
    """The rows of a scale sweep's finished points (torch.compile variants left out: auto never compiles)."""
    rows = []
    for r in doc.get("points", {}).values():
        p = r.get("point", {})
        if r.get("status") != "ok" or p.get("backend") == "torch_compile":
            continue
        rows.append(Row(p["backend"], p["dtype"], p["threads"], r["flops_per_token"], tokens_per_step(r),
                        r["tokens_per_s"]))
    return rows


def _distance(row: Row, flops_per_token: float, tokens_per_step: float) -> float:
    return math.hypot(math.log(row.flops_per_token / flops_per_token), math.log(row.tokens_per_step / tokens_per_step))


def choose(flops_per_token: float, tokens_per_step: float, dtype: str, threads: int, installed: list[str],
           table: list[Row], steps: int | None = None, compile_s: dict[str, float] | None = None,
           start_s: dict[str, float] | None = None) -> Choice:
    """The backend to train with, and why, in words a training log can print.

    With `steps`, the backend that finishes first: its start (`start_s`, backend -> seconds from
    process start to a first step, imports included), its compilation where the cache does not
    hold it (`compile_s`, backend -> seconds) and the steps; otherwise the one with the most tokens/s.
    """
    rows = [r for r in table if r.dtype == dtype and r.backend in installed]
    compile_s, start_s = compile_s or {}, start_s or {}
    if rows:
        nearest_threads = min({r.threads for r in rows}, key=lambda t: (abs(t - threads), t))
        rows = [r for r in rows if r.threads == nearest_threads]
        best: dict[str, Row] = {}
        for backend in {r.backend for r in rows}:
            best[backend] = min((r for r in rows if r.backend == backend),
                                key=lambda r: _distance(r, flops_per_token, tokens_per_step))
        winner = max(best.values(), key=lambda r: r.tokens_per_s)
        if steps and (compile_s or start_s):
            def parts(r: Row) -> dict[str, float]:
                return {"start": start_s.get(r.backend, 0.0), "compiling": compile_s.get(r.backend, 0.0),
                        "training": steps * tokens_per_step / r.tokens_per_s}

            def spelled(r: Row) -> str:
                p = parts(r)
                return f"~{sum(p.values()):.2g} s (" + " + ".join(f"{what} {s:.2g}" for what, s in p.items() if s) + ")"

            first = min(best.values(), key=lambda r: sum(parts(r).values()))
            if first is not winner:
                why = (f"; its Numba cache is empty: one run with --backend {winner.backend} fills it"
                       if parts(winner)["compiling"] else "")
                return Choice(first.backend, f"done first in {steps:,} steps by the nearest sweep points: "
                              f"{spelled(first)}, where {winner.backend}, the fastest a step, would take "
                              f"{spelled(winner)}{why}")
        others = sorted((r for r in best.values() if r is not winner), key=lambda r: -r.tokens_per_s)
        margin = f", {winner.tokens_per_s / others[0].tokens_per_s:.2f}x {others[0].backend}" if others else ""
        return Choice(winner.backend, f"measured fastest at the nearest sweep point ({winner.flops_per_token:,.0f} "
                                      f"FLOPs/token, {winner.tokens_per_step:,.0f} tokens/step, {dtype}, "
                                      f"{nearest_threads} thread(s): {winner.tokens_per_s:,.0f} tokens/s{margin})")
    backend = next(b for b in AUTO_ORDER if b in installed)
    why = "no measured table for this dtype" if table else "no measured table"
    return Choice(backend, f"{why}: fused when Numba is installed, else python")


def regrets(doc: dict, table: list[Row], installed: list[str], leave_one_out: bool = False) -> list[dict]:
    """At every sweep point: what auto picks and its time over the fastest measured there (1.0 = right).

    With leave_one_out, the point's own rows are left out of the table first: how auto does at a
    configuration nobody measured.
    """
    out = []
    for (label, dtype, threads), by_backend in sorted(groups(doc).items()):
        ours = {b: r for b, r in by_backend.items() if b in installed}
        if not ours:
            continue
        any_r = next(iter(ours.values()))
        fpt = any_r["flops_per_token"]
        tps = tokens_per_step(any_r)
        rows = table
        if leave_one_out:
            rows = [r for r in table if not (r.dtype == dtype and r.threads == threads
                                             and math.isclose(r.flops_per_token, fpt)
                                             and math.isclose(r.tokens_per_step, tps, rel_tol=0.05))]
        pick = choose(fpt, tps, dtype, threads, list(ours), rows)
        fastest = max(ours.items(), key=lambda kv: kv[1]["tokens_per_s"])
        chosen = ours.get(pick.backend)
        regret = fastest[1]["tokens_per_s"] / chosen["tokens_per_s"] if chosen else math.inf
        out.append({"label": label, "dtype": dtype, "threads": threads, "auto": pick.backend,
                    "fastest": fastest[0], "regret": regret})
    return out
