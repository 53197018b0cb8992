"""matmul: forward against dot products, backward against finite differences, dtype kept."""

import numpy as np
import pytest

from gradcheck import assert_grad_close
from microgpt.kernels.matmul import matmul_backward, matmul_forward
from reference import matmul_reference

SHAPES = [((4,), 3), ((1, 4), 3), ((5, 4), 6), ((2, 3, 4), 5), ((1,), 1), ((3, 1), 2)]  # (x shape, OUT)


@pytest.mark.parametrize("x_shape,out", SHAPES)
def test_forward_matches_reference(x_shape, out):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((out, x_shape[-1]))
    y = matmul_forward(x, w)
    assert y.shape == (*x_shape[:-1], out)
    np.testing.assert_allclose(y, matmul_reference(x, w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape,out", SHAPES)
def test_backward_matches_finite_differences(x_shape, out):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((out, x_shape[-1]))
    dy = rng.standard_normal((*x_shape[:-1], out))
    dx, dw = matmul_backward(dy, x, w)
    assert dx.shape == x.shape and dw.shape == w.shape

    def loss():
        return float(np.sum(matmul_forward(x, w) * dy))

    assert_grad_close(dx, loss, x)
    assert_grad_close(dw, loss, w)


def test_float32_stays_float32():
    x = np.ones((2, 3), np.float32)
    w = np.ones((4, 3), np.float32)
    y = matmul_forward(x, w)
    dx, dw = matmul_backward(np.ones((2, 4), np.float32), x, w)
    assert y.dtype == dx.dtype == dw.dtype == np.float32


@pytest.mark.parametrize("out,inp", [(3, 4), (1, 1), (64, 16), (27, 16)])
def test_compiled_position_pair_matches_numpy(out, inp):
    from microgpt.kernels.matmul import matvec_backward_into, matvec_forward_into

    rng = np.random.default_rng(2)
    x, w, dy = rng.standard_normal(inp), rng.standard_normal((out, inp)), rng.standard_normal(out)
    y = np.full(out, np.nan)
    matvec_forward_into(y, x, w)
    np.testing.assert_allclose(y, matmul_forward(x, w), rtol=1e-13, atol=1e-14)
    dx, dw = np.ones(inp), np.ones((out, inp))  # accumulates onto what is there
    matvec_backward_into(dx, dw, dy, x, w)
    ref_dx, ref_dw = matmul_backward(dy, x, w)
    np.testing.assert_allclose(dx, 1 + ref_dx, rtol=1e-13)
    np.testing.assert_allclose(dw, 1 + ref_dw, rtol=1e-13)
