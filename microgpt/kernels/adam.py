"""One Adam update, in place, with bias correction (SPEC §2)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def adam_step(p, g, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0):
    # p, g, m, v: same shape, updated in place (g is only read); step is 0-based.
    # weight_decay > 0 is AdamW's decoupled decay, taken from p before this step's update
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    m_hat = m / (1 - beta1 ** (step + 1))
    v_hat = v / (1 - beta2 ** (step + 1))
    if weight_decay:
        p -= (lr * weight_decay) * p
    p -= lr * m_hat / (np.sqrt(v_hat) + eps)


@njit(cache=True)
def adam_step_fused(p, g, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0):
    # the same update in one compiled pass over 1-D arrays: no temporaries, each element read once.
    # The hyperparameters are cast to p's dtype once, so a float32 update is float32 arithmetic
    # (Python floats would make every operation float64 and round only on the store).
    dt = p.dtype.type
    b1, b2, a1, a2 = dt(beta1), dt(beta2), dt(1 - beta1), dt(1 - beta2)
    c1, c2 = dt(1 - beta1 ** (step + 1)), dt(1 - beta2 ** (step + 1))
    lr_, eps_, decay = dt(lr), dt(eps), dt(lr * weight_decay)
    for i in range(p.shape[0]):
        gi = g[i]
        mi = b1 * m[i] + a1 * gi
        vi = b2 * v[i] + a2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        if weight_decay:
            p[i] -= decay * p[i]
        p[i] -= lr_ * (mi / c1) / (math.sqrt(vi / c2) + eps_)
