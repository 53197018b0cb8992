"""Causal self-attention over a whole sequence at once, every head in one stacked matmul.

The sequence-wide twin of attention.py: instead of one query over a KV cache,
all T queries attend at once and a mask hides the future. Row t of the result
is exactly what the per-position forward computes at position t (SPEC §1).

Queries may be fewer than keys (Tq <= Tk): they are then the *last* Tq
positions, so Tq = 1 is one decoding step over a KV cache.

Both forms do the products as stacked BLAS matmuls, per (batch, head) a
(Tq, hd) x (hd, Tk) product over the full square: BLAS does the masked half
faster than loops can skip it. They differ in the softmax between them:

- `causal_attention_forward` / `causal_attention_backward`: plain numpy, the
  readable version: mask, max, subtract, exp, sum, divide, each a pass over
  the whole (..., H, Tq, Tk) array;
- `causal_attention_forward_fused` / `causal_attention_backward_fused`: the
  same products with a Numba softmax: one pass per row over its visible keys
  only (half the exps), the fused backend's vector exp (fused_simd.vexp),
  `prange` over (batch, head) when the call is big enough. Same signatures.

Padding at the end of a document needs no mask of its own: a real position
never attends to a later one, and the caller gives padded positions a zero
gradient. Everything compiles lazily (cache=True); nothing runs at import.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange

from .. import envvars
from .fused_simd import VECTOR_BYTES, exp_shifted


def _split_heads(x, n_head):
    # (..., T, C) -> (..., H, T, hd), a view (matmul results are written through it, so heads never need merging)
    *lead, T, C = x.shape
    return x.reshape(*lead, T, n_head, C // n_head).swapaxes(-2, -3)


@lru_cache(maxsize=64)
def _future(Tq, Tk):
    # (Tq, Tk) bool, True where key j lies after query i (query i sits at position Tk - Tq + i)
    future = np.triu(np.ones((Tq, Tk), dtype=bool), k=Tk - Tq + 1)
    future.flags.writeable = False
    return future


def _scale(q, n_head):
    # the reference multiplies by (sqrt(hd))**-1; taken in q's dtype so float32 stays float32
    hd = q.shape[-1] // n_head
    return q.dtype.type((hd ** 0.5) ** -1)


def _masked_softmax_numpy(scores):
    # scores (..., Tq, Tk) -> probabilities in place; query i sees keys 0 .. Tk - Tq + i
    Tq, Tk = scores.shape[-2:]
    np.copyto(scores, -np.inf, where=_future(Tq, Tk))  # exp(-inf) = 0: the future gets no weight
    # the diagonal is never masked, so every row max is finite
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)


def _masked_softmax_backward_numpy(datt, att):
    # datt (..., Tq, Tk) -> dscores in place: att (datt - sum_j att_j datt_j); masked entries become 0 with att
    datt -= np.sum(datt * att, axis=-1, keepdims=True)
    datt *= att


def _forward(q, k, v, n_head, masked_softmax):
    qh = _split_heads(q * _scale(q, n_head), n_head)  # scaling q (T*C) is cheaper than the scores (H*T*T)
    kh, vh = _split_heads(k, n_head), _split_heads(v, n_head)
    att = qh @ kh.swapaxes(-1, -2)  # (..., H, Tq, Tk) scores
    masked_softmax(att)
    out = np.empty(q.shape, q.dtype)
    np.matmul(att, vh, out=_split_heads(out, n_head))  # heads written in place: no merging copy
    return out, att


def _backward(dout, q, k, v, att, n_head, masked_softmax_backward, out=None):
    # out: optional (dq, dk, dv) arrays to write into, e.g. column slices of one (..., T, 3C) gradient
    dq, dk, dv = out if out is not None else (np.empty(q.shape, q.dtype), np.empty(k.shape, k.dtype),
                                              np.empty(v.shape, v.dtype))
    scale = _scale(q, n_head)
    qh = _split_heads(q * scale, n_head)
    kh, vh = _split_heads(k, n_head), _split_heads(v, n_head)
    douth = _split_heads(dout, n_head)
    np.matmul(att.swapaxes(-1, -2), douth, out=_split_heads(dv, n_head))
    dscores = douth @ vh.swapaxes(-1, -2)  # datt (..., H, Tq, Tk)
    masked_softmax_backward(dscores, att)
    dqh = _split_heads(dq, n_head)
    np.matmul(dscores, kh, out=dqh)
    dqh *= scale
    np.matmul(dscores.swapaxes(-1, -2), qh, out=_split_heads(dk, n_head))  # qh already carries the scale
    return dq, dk, dv


def causal_attention_forward(q, k, v, n_head):
    # q (..., Tq, C), k, v (..., Tk, C) -> out (..., Tq, C), att (..., H, Tq, Tk) with masked entries 0
    return _forward(q, k, v, n_head, _masked_softmax_numpy)


def causal_attention_backward(dout, q, k, v, att, n_head):
    # dout (..., Tq, C), q (..., Tq, C), k, v (..., Tk, C), att (..., H, Tq, Tk) -> dq, dk, dv (shapes of q, k, v)
    return _backward(dout, q, k, v, att, n_head, _masked_softmax_backward_numpy)


# -- Numba softmax: one pass per row over its visible keys ---------------------------------
# Accumulators take the array dtype (`zero` from the array, never a literal: in Numba
# float32 * 0 is float64), so float32 stays float32 inside. `reassoc` lets LLVM vectorise
# the sums; no flag that assumes finite values, so a diverging run still shows NaN/inf.
_FAST = {"contract", "reassoc"}


@njit(cache=True, nogil=True, fastmath=False)  # set, so not inherited from the fastmath caller
def _exp_visible(row, top, tail):
    # row <- exp(row - top): fused_simd's vexp, compiled here without fastmath so that it rounds as it
    # does in the fused backend (and flushes what would be denormal, slow to compute with, to 0)
    exp_shifted(row, top, tail)


@njit(cache=True, fastmath=_FAST)
def _softmax_head(a, tail):
    # a (Tq, Tk) scores -> probabilities in place; query i sees keys 0 .. Tk - Tq + i
    Tq, Tk = a.shape
    zero, one = a.dtype.type(0), a.dtype.type(1)
    W = tail.shape[0]
    for i in range(Tq):
        n = Tk - Tq + i + 1
        row = a[i]
        top = row[0]
        for j in range(1, n):
            top = max(top, row[j])
        # up to whole vectors where the row has room: no partial one to go through `tail` but at its end;
        # the extra keys' exps (of scores above `top`, maybe inf) are zeroed
        _exp_visible(row[:min(Tk, (n + W - 1) // W * W)], top, tail)
        for j in range(n, Tk):
            row[j] = zero
        total = zero
        for j in range(n):
            total += row[j]
        inv_total = one / total  # times the reciprocal, as the reference does
        for j in range(n):
            row[j] *= inv_total


@njit(cache=True, fastmath=_FAST)
def _softmax_backward_head(d, a):
    # d (Tq, Tk) = datt -> dscores in place, a (Tq, Tk) the probabilities (0 where masked, so d is too)
    Tq, Tk = a.shape
    for i in range(Tq):
        weighted = a[i, 0] - a[i, 0]
        for j in range(Tk):
            weighted += a[i, j] * d[i, j]
        for j in range(Tk):
            d[i, j] = a[i, j] * (d[i, j] - weighted)


@njit(cache=True, nogil=True)
def _softmax_serial(att, tails):
    for r in range(att.shape[0]):
        _softmax_head(att[r], tails[0])


@njit(cache=True, parallel=True)
def _softmax_parallel(att, tails):
    for r in prange(att.shape[0]):
        _softmax_head(att[r], tails[r])


@njit(cache=True, nogil=True)
def _softmax_backward_serial(datt, att):
    for r in range(att.shape[0]):
        _softmax_backward_head(datt[r], att[r])


@njit(cache=True, parallel=True)
def _softmax_backward_parallel(datt, att):
    for r in prange(att.shape[0]):
        _softmax_backward_head(datt[r], att[r])


# Below this many score entries per call a parallel launch costs more than it saves
# (docs/batched.md has the figures); above it, prange over (batch, head) pays.
PARALLEL_MIN_SCORES = envvars.whole_number("MICROGPT_CAUSAL_PARALLEL_MIN_SCORES", 1 << 18)


def _use_parallel(parallel, heads, Tq, Tk):
    if parallel is not None:
        return parallel and heads > 1
    if heads < 2 or heads * Tq * Tk < PARALLEL_MIN_SCORES:
        return False  # decided without asking Numba for its thread pool, which would start it
    import numba

    from ..threads import default_threading_layer

    default_threading_layer()  # workqueue, not omp's spin-waiting workers (docs/threads.md)
    return numba.get_num_threads() > 1


def _masked_softmax_numba(scores, parallel=None):
    Tq, Tk = scores.shape[-2:]
    heads = scores.reshape(-1, Tq, Tk)  # a view: the scores come fresh from matmul
    parallel = _use_parallel(parallel, heads.shape[0], Tq, Tk)
    tails = np.empty((heads.shape[0] if parallel else 1, VECTOR_BYTES // scores.itemsize), scores.dtype)
    run = _softmax_parallel if parallel else _softmax_serial
    run(heads, tails)


def _masked_softmax_backward_numba(datt, att, parallel=None):
    Tq, Tk = att.shape[-2:]
    heads = att.reshape(-1, Tq, Tk)
    parallel = _use_parallel(parallel, heads.shape[0], Tq, Tk)
    run = _softmax_backward_parallel if parallel else _softmax_backward_serial
    run(datt.reshape(-1, Tq, Tk), heads)


def causal_attention_forward_fused(q, k, v, n_head, parallel=None):
    # q (..., Tq, C), k, v (..., Tk, C) -> out (..., Tq, C), att (..., H, Tq, Tk) with masked entries 0
    # parallel: None decides by size and NUMBA_NUM_THREADS; False for callers that run several at once
    # (the serial kernels release the GIL; Numba's workqueue pool must not be entered from two threads)
    return _forward(q, k, v, n_head, lambda scores: _masked_softmax_numba(scores, parallel))


def causal_attention_backward_fused(dout, q, k, v, att, n_head, parallel=None, out=None):
    # dout (..., Tq, C), q (..., Tq, C), k, v (..., Tk, C), att (..., H, Tq, Tk) -> dq, dk, dv (shapes of q, k, v)
    # out: optional (dq, dk, dv) to write into, as in _backward
    return _backward(dout, q, k, v, att, n_head, lambda datt, a: _masked_softmax_backward_numba(datt, a, parallel),
                     out)
