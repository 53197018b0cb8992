"""RMS normalisation without a gain: y = x / sqrt(mean(x^2) + 1e-5) over the last axis."""

from __future__ import annotations

import numpy as np
from numba import njit

EPS = 1e-5


def rmsnorm_forward(x):
    # x (..., C) -> y (..., C), rstd (..., 1)
    ms = np.mean(x * x, axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(ms + EPS)
    return x * rstd, rstd


def rmsnorm_backward(dy, y, rstd):
    # dy, y (..., C), rstd (..., 1) -> dx (..., C)
    # y = x * rstd and d(rstd)/dx = -rstd^3 x / C, so the normalised y carries all we need:
    # dx = rstd * (dy - y * mean(dy * y))
    return rstd * (dy - y * np.mean(dy * y, axis=-1, keepdims=True))


# -- one position, compiled (see matmul.py) ---------------------------------------


@njit(cache=True)
def rmsnorm_forward_into(y, x):
    # y (C,) written; returns rstd. Same operations as the python backend's rmsnorm, in x's dtype.
    dt = x.dtype.type
    ms = dt(0)
    for i in range(x.shape[0]):
        ms += x[i] * x[i]
    rstd = (ms * dt(1.0 / x.shape[0]) + dt(EPS)) ** dt(-0.5)  # 1/C as python computes len(x)**-1
    for i in range(x.shape[0]):
        y[i] = x[i] * rstd
    return rstd


@njit(cache=True)
def rmsnorm_backward_into(dx, dy, y, rstd):
    # dx (C,) += rstd * (dy - y * mean(dy * y))
    dt = y.dtype.type
    dot = dt(0)
    for i in range(y.shape[0]):
        dot += dy[i] * y[i]
    mean = dot / dt(y.shape[0])
    for i in range(y.shape[0]):
        dx[i] += rstd * (dy[i] - y[i] * mean)
