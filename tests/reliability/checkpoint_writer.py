"""A process that saves a names-sized checkpoint over and over, for the kill and concurrency tests.

    python checkpoint_writer.py PATH WRITER_ID FIRST_STEP [SECONDS]

Save i holds train_state.step = i and weights / Adam moments that are a function of (writer, i)
and the position, so a reader can tell a whole file from a torn or mixed one (`check_whole`).
It prints "saved i" after each save returns, and stops after SECONDS (default: never).
"""

from __future__ import annotations

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from microgpt import checkpoint  # noqa: E402
from microgpt.checkpoint import Checkpoint  # noqa: E402
from microgpt.config import load_scenario  # noqa: E402
from microgpt.params import param_shapes  # noqa: E402

# the names vocabulary: 4,192 parameters, ~0.25 MB of JSON with the Adam moments
UCHARS = list("abcdefghijklmnopqrstuvwxyz")


def value(writer: int, step: int, name_index: int, r: int, c: int, moment: int) -> float:
    # long, distinct reprs (like trained weights) that depend on everything that identifies a save
    return math.sin(1.0 + writer * 7919 + step * 104729 + name_index * 1009 + r * 31 + c + moment * 0.5)


def matrices(writer: int, step: int, moment: int) -> dict:
    cfg = load_scenario("names")
    shapes = param_shapes(cfg.model, len(UCHARS) + 1)
    return {name: [[value(writer, step, k, r, c, moment) for c in range(cols)] for r in range(rows)]
            for k, (name, (rows, cols)) in enumerate(shapes.items())}


def make(writer: int, step: int) -> Checkpoint:
    cfg = load_scenario("names")
    state = {"step": step, "adam_m": matrices(writer, step, 1),
             "adam_v": {n: [[abs(x) for x in row] for row in m] for n, m in matrices(writer, step, 2).items()},
             "rng_state": None}
    return Checkpoint(cfg, UCHARS, matrices(writer, step, 0), {"source": f"writer {writer}", "sha256": None},
                      "python", "float64", state)


def check_whole(ck: Checkpoint) -> tuple[int, int]:
    """(writer, step) of a loaded checkpoint, after checking every number is that save's."""
    writer = int(ck.dataset["source"].split()[1])
    step = ck.train_state["step"]
    expected = make(writer, step)
    assert ck.weights == expected.weights, f"weights of writer {writer} step {step} are not that save's"
    assert ck.train_state["adam_m"] == expected.train_state["adam_m"]
    assert ck.train_state["adam_v"] == expected.train_state["adam_v"]
    return writer, step


def main() -> None:
    path, writer, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else math.inf
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        checkpoint.save(path, make(writer, step))
        print(f"saved {step}", flush=True)
        step += 1


if __name__ == "__main__":
    main()
