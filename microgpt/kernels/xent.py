"""Softmax followed by the cross-entropy of the target, one row per prediction."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def softmax_xent_forward(logits, targets):
    # logits (N, V), targets (N,) int -> losses (N,), probs (N, V)
    # subtracting the row max keeps exp() finite and leaves the softmax unchanged
    exps = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = exps / exps.sum(axis=-1, keepdims=True)
    rows = np.arange(logits.shape[0])
    losses = -np.log(probs[rows, targets])
    return losses, probs


def softmax_xent_backward(dlosses, probs, targets):
    # dlosses (N,), probs (N, V), targets (N,) -> dlogits (N, V) = (probs - onehot) * dlosses
    dlogits = probs.copy()
    dlogits[np.arange(probs.shape[0]), targets] -= 1
    dlogits *= dlosses[:, None]
    return dlogits


# -- one position, compiled (see matmul.py) ---------------------------------------


@njit(cache=True)
def softmax_xent_forward_into(probs, logits, target):
    # probs (V,) written; returns -log probs[target]. The python backend's softmax:
    # max-subtracted exps, a left-fold total, then e * total**-1.
    top = logits[0]
    for i in range(1, logits.shape[0]):
        top = max(top, logits[i])
    total = 0.0
    for i in range(logits.shape[0]):
        probs[i] = math.exp(logits[i] - top)
        total += probs[i]
    inv_total = total ** -1
    for i in range(logits.shape[0]):
        probs[i] = probs[i] * inv_total
    return -math.log(probs[target])


@njit(cache=True)
def softmax_xent_backward_into(dlogits, probs, target, dloss):
    # dlogits (V,) written = (probs - onehot(target)) * dloss
    for i in range(probs.shape[0]):
        dlogits[i] = probs[i] * dloss
    dlogits[target] -= dloss
