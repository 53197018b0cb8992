"""Central finite differences of a scalar function of numpy arrays (float64)."""

from __future__ import annotations

import numpy as np


def numerical_grad(f, x, h=1e-6):
    """d f() / d x by central differences, perturbing x in place one element at a time."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f()
        x[i] = old - h
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def assert_grad_close(analytic, f, x, rtol=1e-6, atol=1e-8, h=1e-6):
    numeric = numerical_grad(f, x, h)
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)
