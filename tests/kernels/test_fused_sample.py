"""microgpt/kernels/fused_sample.py: the compiled softmax numerators and draw against sampling_math's Python."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

pytest.importorskip("numba")

from microgpt.kernels.fused_sample import draw, softmax_numerators  # noqa: E402
from microgpt.sampling_math import inverse_temperature  # noqa: E402


def python_numerators(logits, temperature):
    """exp(logit / t - max) and their sum, as sampling_math's softmax computes them (in order)."""
    scaled = [float(x) * inverse_temperature(temperature) for x in logits]
    top = max(scaled)
    exps = [math.exp(x - top) for x in scaled]
    return exps, sum(exps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_numerators_and_their_sum_are_pythons(dtype):
    """Widened to float64 first (as .tolist() does), scaled, max-subtracted, exponentiated, summed in order."""
    rng = np.random.default_rng(3)
    for case in range(50):
        logits = rng.normal(0, [0.1, 1.0, 20.0][case % 3], int(rng.integers(2, 80))).astype(dtype)
        temperature = [0.5, 1.0, 1.7][case % 3]
        exps = np.zeros(logits.size)
        total = softmax_numerators(exps, logits, inverse_temperature(temperature))
        want, want_total = python_numerators(logits.tolist(), temperature)
        np.testing.assert_allclose(exps, want, rtol=1e-15, atol=0)
        assert total == pytest.approx(want_total, rel=1e-15)


def test_a_scaled_logit_that_is_not_finite_gives_nan_for_python_to_handle():
    """NaN, not a number that looks usable: the caller falls back to sampling_math (rescale or report)."""
    exps = np.zeros(3)
    assert math.isnan(softmax_numerators(exps, np.array([0.0, math.nan, 1.0]), 1.0))
    assert math.isnan(softmax_numerators(exps, np.array([0.0, 1.0, 2.0]), math.inf))


def test_draw_is_the_index_rng_choices_returns_for_the_same_random_number():
    """draw(exps, 1/total, u) picks what rng.choices(range(V), weights=probs) picks when rng.random() gives u."""
    rng = random.Random(5)
    for case in range(300):
        exps = [rng.expovariate(1.0) ** 3 for _ in range(rng.randint(1, 40))]
        inv_total = sum(exps) ** -1
        probs = [e * inv_total for e in exps]
        state = rng.getstate()
        want = rng.choices(range(len(exps)), weights=probs)[0]
        rng.setstate(state)
        u = rng.random()
        assert draw(np.array(exps), inv_total, u) == want, case
    assert draw(np.array([1.0, 0.0, 1.0]), 0.5, 0.5) == 2  # a zero weight is never drawn, at a boundary either
