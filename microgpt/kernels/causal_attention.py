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
  only (half the exps), an exp that vectorises, `prange` over (batch, head)
  when the call is big enough. Same signatures.

Padding at the end of a document needs no mask of its own: a real position
never attends to a later one, and the caller gives padded positions a zero
gradient. Everything compiles lazily (cache=True); nothing runs at import.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange

from .. import envvars


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


@lru_cache(maxsize=None)
def _exp_constants(dtype):
    """What `_exp_row` needs for one dtype: (constants in that dtype, the int type of its bits).

    exp(x) = 2**t exp(r) with t = round(x / ln 2) and r = x - t ln 2, ln 2 split into a
    short head and a tail so that t * head is exact (Cody-Waite; the splits are fdlibm's);
    exp(r) is its Taylor series (|r| <= ln(2)/2; to r**13 for float64, truncation below
    1e-17, to r**7 for float32, below 1e-9), and 2**t is written into the exponent bits.
    Results that would be denormal or smaller are exactly 0: denormals are slow, and a
    weight below 1e-38 (1e-307) next to the row's largest, 1, changes nothing.
    """
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        ln2_hi, ln2_lo, lowest, degree, itype, mantissa, bias = (
            0.693145751953125, 1.428606765330187e-06, -100.0, 7, np.int32, 23, 127)
    else:
        ln2_hi, ln2_lo, lowest, degree, itype, mantissa, bias = (
            0.6931471803691238, 1.9082149292705877e-10, -750.0, 13, np.int64, 52, 1023)
    taylor = [1.0]
    for i in range(1, 14):
        taylor.append(taylor[-1] / i if i <= degree else 0.0)
    consts = np.array([1.4426950408889634, ln2_hi, ln2_lo, lowest, bias, 2.0 ** mantissa, *taylor], dtype=dtype)
    consts.flags.writeable = False
    return consts, itype


@njit(cache=True, fastmath=_FAST)
def _exp_row(s, top, bits, pow2, ec):
    # s <- exp(min(s - top, 0)); bits (int) and pow2 (float) are two views of one scratch buffer
    log2e, ln2_hi, ln2_lo, lowest, bias, mantissa = ec[0], ec[1], ec[2], ec[3], ec[4], ec[5]
    c0, c1, c2, c3, c4, c5, c6, c7 = ec[6], ec[7], ec[8], ec[9], ec[10], ec[11], ec[12], ec[13]
    c8, c9, c10, c11, c12, c13 = ec[14], ec[15], ec[16], ec[17], ec[18], ec[19]
    zero = c0 - c0
    wide = c13 != zero  # float64 needs all the terms; float32 stops at r**7
    for j in range(s.shape[0]):
        x = min(max(s[j] - top, lowest), zero)
        t = np.floor(x * log2e + c2)  # c2 = 1/2: rounds to nearest
        r = (x - t * ln2_hi) - t * ln2_lo
        # Estrin's scheme: shorter dependency chains than Horner's
        r2 = r * r
        r4 = r2 * r2
        p = (c0 + c1 * r) + r2 * (c2 + c3 * r) + r4 * ((c4 + c5 * r) + r2 * (c6 + c7 * r))
        if wide:
            p += (r4 * r4) * ((c8 + c9 * r) + r2 * (c10 + c11 * r) + r4 * (c12 + c13 * r))
        s[j] = p
        # 2**t as bits: the biased exponent t + bias shifted past the mantissa, or 0 (the float 0)
        # where the result would be denormal; in float arithmetic, which vectorises, then one conversion
        e = t + bias
        bits[j] = (e if e > c0 else zero) * mantissa
    for j in range(s.shape[0]):
        s[j] *= pow2[j]


@njit(cache=True, fastmath=_FAST)
def _softmax_head(a, bits, pow2, ec):
    # a (Tq, Tk) scores -> probabilities in place; query i sees keys 0 .. Tk - Tq + i
    Tq, Tk = a.shape
    zero = ec[6] - ec[6]
    for i in range(Tq):
        n = Tk - Tq + i + 1
        row = a[i]
        top = row[0]
        for j in range(1, n):
            top = max(top, row[j])
        # up to a multiple of 8 keys: whole vectors, no slow scalar remainder; the extra ones are zeroed
        m = min(Tk, (n + 7) // 8 * 8)
        _exp_row(row[:m], top, bits, pow2, ec)
        for j in range(n, Tk):
            row[j] = zero
        total = zero
        for j in range(m):
            total += row[j]
        inv_total = ec[6] / total  # times the reciprocal, as the reference does (ec[6] = 1)
        for j in range(m):
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
def _softmax_serial(att, bits, pow2, ec):
    for r in range(att.shape[0]):
        _softmax_head(att[r], bits[0], pow2[0], ec)


@njit(cache=True, parallel=True)
def _softmax_parallel(att, bits, pow2, ec):
    for r in prange(att.shape[0]):
        _softmax_head(att[r], bits[r], pow2[r], ec)


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

    from .attention import default_threading_layer

    default_threading_layer()  # workqueue, not omp's spin-waiting workers (docs/threads.md)
    return numba.get_num_threads() > 1


def _masked_softmax_numba(scores, parallel=None):
    Tq, Tk = scores.shape[-2:]
    heads = scores.reshape(-1, Tq, Tk)  # a view: the scores come fresh from matmul
    parallel = _use_parallel(parallel, heads.shape[0], Tq, Tk)
    ec, itype = _exp_constants(scores.dtype)
    bits = np.empty((heads.shape[0] if parallel else 1, Tk), itype)
    run = _softmax_parallel if parallel else _softmax_serial
    run(heads, bits, bits.view(scores.dtype), ec)


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
