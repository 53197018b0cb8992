"""One training step per backend x dtype (names), timed by pytest-benchmark and checked against the python backend.

Before anything is timed, each backend's first three losses are compared with
the python backend's on the same documents and weights (the reference
arithmetic, itself checked against the reference microgpt in tests/golden).
The timed call then trains on, STEP_CHUNK (10) steps per call as every timing tool here:
steps 3-12, 13-22, ... (wrapping before the schedule's end, where the learning rate
reaches 0); every loss must stay finite.
Compile time is spent before the timing starts (`compile()`).
"""

from __future__ import annotations

import math

import pytest

from microgpt.backends.registry import DTYPES, REGISTRY, skip_reason
from microgpt.config import load_scenario
from microgpt.bench import STEP_CHUNK, bench_experiment, step_positions
from microgpt.flops import flops_for_docs

ARRAY_BACKENDS = [name for name in REGISTRY if name != "python"]
# float64 backends follow the reference's order of operations closely; float32 rounds every op
LOSS_TOL = {"float64": 1e-9, "float32": 2e-4}
REF_STEPS = 3


@pytest.fixture(scope="module")
def python_losses():
    exp = bench_experiment("names", "float64", num_steps=1000)
    return exp.make_backend("python").train_steps(0, REF_STEPS)


def make(backend, dtype):
    reason = skip_reason(backend, dtype, load_scenario("names").model.block_size)
    if reason:
        pytest.skip(reason)
    exp = bench_experiment("names", dtype, num_steps=1000)
    be = exp.make_backend(backend)
    be.compile()
    return exp, be


def timed_step(benchmark, exp, be, backend, dtype):
    """A timed call is one train_steps() call of STEP_CHUNK steps, as every timing tool here runs them."""
    horizon = exp.cfg.training.num_steps
    count = iter(range(10 ** 9))
    done, losses = [], []

    def next_step():
        step = REF_STEPS + (next(count) * STEP_CHUNK) % (horizon - REF_STEPS - STEP_CHUNK)
        losses.extend(be.train_steps(step, STEP_CHUNK))
        done.extend(range(step, step + STEP_CHUNK))

    benchmark.group = "train_step-names"
    benchmark(next_step)
    assert losses and all(math.isfinite(x) and 0 <= x < 10 for x in losses)
    # the mean work of the steps that ran, for GFLOP/s in microgpt.report
    positions = [n for s in done for n in step_positions(exp, s, 1)]
    model, V = exp.cfg.model, exp.tokenizer.vocab_size
    calls = len(done) / STEP_CHUNK
    benchmark.extra_info.update({"backend": backend, "dtype": dtype, "scenario": "names",
                                 "steps_per_call": STEP_CHUNK, "tokens": sum(positions) / calls,
                                 "flops": flops_for_docs(model, V, positions) / calls})


def test_python_step(benchmark, python_losses):
    exp, be = make("python", "float64")
    # the reference run's first losses (tests/golden/names_seed42.json) when the real names.txt is here
    if exp.dataset.source.endswith("names.txt"):
        assert [round(x, 4) for x in python_losses] == [3.3660, 3.4243, 3.1778]
    assert be.train_steps(0, REF_STEPS) == python_losses
    timed_step(benchmark, exp, be, "python", "float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ARRAY_BACKENDS)
def test_array_backend_step(benchmark, python_losses, backend, dtype):
    exp, be = make(backend, dtype)
    losses = be.train_steps(0, REF_STEPS)
    assert losses == pytest.approx(python_losses, rel=LOSS_TOL[dtype], abs=LOSS_TOL[dtype])
    timed_step(benchmark, exp, be, backend, dtype)
