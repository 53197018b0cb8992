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
    # numpy never takes log(0), and the loss stays finite where the target's probability underflows
    # (a loss of 122 is an ordinary number even where exp(-122) is 0 in float32); a NaN stays NaN.
    losses = np.log(totals) - shifted[rows, targets]
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
    # max-subtracted exps, a left-fold total (in the logits' dtype), then e * total**-1.
    top = logits[0]
    for i in range(1, logits.shape[0]):
        top = max(top, logits[i])
    total = logits.dtype.type(0)
    for i in range(logits.shape[0]):
        probs[i] = math.exp(logits[i] - top)
        total += probs[i]
    inv_total = logits.dtype.type(1) / total  # total**-1, which Numba would take in float64
    for i in range(logits.shape[0]):
        probs[i] = probs[i] * inv_total
    # log-sum-exp minus the target's logit, not -log(probs[target]): finite where that probability
    # underflows to 0 (total >= 1, so log never sees 0); within an ulp of -log(p) elsewhere
    return math.log(total) - (logits[target] - top)


@njit(cache=True)
def softmax_xent_backward_into(dlogits, probs, target, dloss):
    # dlogits (V,) written = (probs - onehot(target)) * dloss
    for i in range(probs.shape[0]):
        dlogits[i] = probs[i] * dloss
    dlogits[target] -= dloss
