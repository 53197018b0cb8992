"""The MLP non-linearity: relu, or relu2 = relu(x)**2 (the alice scenarios)."""

from __future__ import annotations

import numpy as np
from numba import njit

KINDS = ("relu", "relu2")


def activation_forward(x, kind):
    # x (...) -> y (...)
    r = np.maximum(x, 0)
    if kind == "relu":
        return r
    if kind == "relu2":
        return r * r
    raise ValueError(f"unknown activation {kind!r} (known: {', '.join(KINDS)})")


def activation_backward(dy, x, kind):
    # dy, x (...) -> dx (...); the pre-activation x is what we keep, the output is recomputable
    if kind == "relu":
        return dy * (x > 0)
    if kind == "relu2":
        return dy * (2 * np.maximum(x, 0))
    raise ValueError(f"unknown activation {kind!r} (known: {', '.join(KINDS)})")


# -- one position, compiled (see matmul.py); kind as an int code -------------------

CODES = {kind: i for i, kind in enumerate(KINDS)}  # relu 0, relu2 1


@njit(cache=True)
def activation_forward_into(y, x, code):
    # y (N,) written
    zero = x.dtype.type(0)
    for i in range(x.shape[0]):
        r = x[i] if x[i] > 0 else zero
        y[i] = r if code == 0 else r * r


@njit(cache=True)
def activation_backward_into(dx, dy, x, code):
    # dx (N,) written
    for i in range(x.shape[0]):
        if x[i] <= 0:
            dx[i] = 0.0
        elif code == 0:
            dx[i] = dy[i]
        else:
            dx[i] = dy[i] * (x[i] + x[i])  # 2 * x would be int * float32 = float64 in Numba
