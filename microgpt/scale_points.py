"""The finished points of a scale sweep's JSON document (scripts/scale_sweep.py), as its readers group them.

The report's Scaling section (microgpt/report/scaling.py) and `--backend auto`'s table
(microgpt/auto_choice.py) both compare the backends measured at one point of the sweep;
this is the one reading of a point they share.
"""

from __future__ import annotations

CACHE_LOAD_S = 1.0  # a point whose compile() took at most this loaded its code from the cache: it started warm


def started_warm(result: dict) -> bool:
    """Whether a finished point's process loaded its compiled code from the cache (its warm start counts)."""
    return "warm_start_s" in result and result.get("compile_s", 0.0) <= CACHE_LOAD_S


def ok_points(doc: dict) -> list[dict]:
    return [r for r in doc.get("points", {}).values() if r.get("status") == "ok"]


def groups(doc: dict) -> dict:
    """(label, dtype, threads) -> {backend: result}, over the points that finished."""
    out: dict = {}
    for r in ok_points(doc):
        p = r["point"]
        out.setdefault((p["label"], p["dtype"], p["threads"]), {})[p["backend"]] = r
    return out


def tokens_per_step(result: dict) -> float:
    """The tokens one optimizer step of a point trained: the sweep records tokens/s and steps per timed window."""
    return result["tokens_per_s"] * result["window_s"] / result["steps_per_window"]
