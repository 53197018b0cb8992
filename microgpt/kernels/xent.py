"""Softmax followed by the cross-entropy of the target, one row per prediction."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def softmax_xent_forward(logits, targets):
    # logits (N, V), targets (N,) int -> losses (N,), probs (N, V)
    # subtracting the row max keeps exp() finite and leaves the softmax unchanged
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    totals = exps.sum(axis=-1)  # >= 1: the max's own term is exp(0)
    probs = exps / totals[:, None]
    rows = np.arange(logits.shape[0])
    # -log softmax = log(sum exp) - logit, from the shifted logits: log() only sees totals >= 1, so
    # numpy never takes log(0) (which prints a RuntimeWarning). Where the target's probability did
    # underflow to 0 the loss is inf, as in the python backend (training stops there), not the
    # finite value the log-sum-exp form would give; a NaN stays NaN.
    losses = np.log(totals) - shifted[rows, targets]
    losses[probs[rows, targets] == 0] = np.inf
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
