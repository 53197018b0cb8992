"""Matrix multiply with a row-major [out][in] weight: y = x W^T.

The same pair serves one position (C,), a sequence (T, C) and a batch (B, T, C):
every leading dimension of x is just more rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def matmul_forward(x, w):
    # x (..., IN), w (OUT, IN) -> y (..., OUT)
    return x @ w.T


def matmul_backward(dy, x, w):
    # dy (..., OUT), x (..., IN), w (OUT, IN) -> dx (..., IN), dw (OUT, IN)
    dx = dy @ w
    if dy.ndim == 1:
        dw = np.outer(dy, x)
    else:
        # every leading position contributes to the one weight: fold them into rows first
        dw = dy.reshape(-1, dy.shape[-1]).T @ x.reshape(-1, x.shape[-1])
    return dx, dw


# -- one position, compiled ------------------------------------------------------
# The per-position backend runs a whole position in one compiled call; these are
# its matmul pieces. Each output is a left fold from 0 over the input, in the
# python backend's order, so float64 results can match it bit for bit. Accumulators start
# from a zero of the array's dtype: a `0.0` literal is float64 in Numba, and a float32
# run would then sum in float64.


@njit(cache=True)
def matvec_forward_into(y, x, w):
    # y (OUT,) written = w @ x; x (IN,), w (OUT, IN)
    zero = y.dtype.type(0)
    for o in range(w.shape[0]):
        acc = zero
        for i in range(w.shape[1]):
            acc += w[o, i] * x[i]
        y[o] = acc


@njit(cache=True)
def matvec_backward_into(dx, dw, dy, x, w):
    # dx (IN,) += w^T dy; dw (OUT, IN) += outer(dy, x). Both accumulate: a position's
    # input feeds several matrices (q, k, v) and a weight serves every position.
    for o in range(w.shape[0]):
        g = dy[o]
        for i in range(w.shape[1]):
            dx[i] += w[o, i] * g
            dw[o, i] += g * x[i]
