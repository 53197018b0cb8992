"""rmsnorm: forward against the per-row formula, backward against finite differences."""

import numpy as np
import pytest

from gradcheck import assert_grad_close
from microgpt.kernels.rmsnorm import rmsnorm_backward, rmsnorm_forward
from reference import rmsnorm_reference

SHAPES = [(8,), (1, 8), (5, 16), (2, 3, 4), (1,), (3, 1)]


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_reference(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    y, rstd = rmsnorm_forward(x)
    assert rstd.shape == (*shape[:-1], 1)
    np.testing.assert_allclose(y, rmsnorm_reference(x), rtol=1e-12)
    np.testing.assert_allclose(y, x * rstd, rtol=1e-15)


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_finite_differences(shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    y, rstd = rmsnorm_forward(x)
    dx = rmsnorm_backward(dy, y, rstd)
    assert_grad_close(dx, lambda: float(np.sum(rmsnorm_forward(x)[0] * dy)), x)


def test_tiny_input_is_kept_finite_by_the_epsilon():
    y, rstd = rmsnorm_forward(np.zeros(4))
    assert np.all(y == 0) and np.all(np.isfinite(rstd))
    dx = rmsnorm_backward(np.ones(4), y, rstd)
    np.testing.assert_allclose(dx, np.full(4, 1e-5 ** -0.5))


def test_float32_stays_float32():
    y, rstd = rmsnorm_forward(np.ones((2, 3), np.float32))
    assert y.dtype == rstd.dtype == np.float32
    assert rmsnorm_backward(y, y, rstd).dtype == np.float32


@pytest.mark.parametrize("n", [1, 4, 16, 32])
def test_compiled_position_pair_matches_numpy(n):
    from microgpt.kernels.rmsnorm import rmsnorm_backward_into, rmsnorm_forward_into

    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((2, n))
    y = np.full(n, np.nan)
    rstd = rmsnorm_forward_into(y, x)
    ref_y, ref_rstd = rmsnorm_forward(x)
    np.testing.assert_allclose(y, ref_y, rtol=1e-14)
    assert rstd == pytest.approx(ref_rstd[0], rel=1e-14)
    dx = np.ones(n)
    rmsnorm_backward_into(dx, dy, y, rstd)
    np.testing.assert_allclose(dx, 1 + rmsnorm_backward(dy, ref_y, ref_rstd), rtol=1e-12)
