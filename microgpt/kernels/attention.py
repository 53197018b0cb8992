"""Causal self-attention for one query over a KV cache (the per-position backends).

At position t the query q attends to the keys and values of positions 0..t
(the cache, current position included). Heads are independent slices of the
C channels, so the Numba kernels run one head per `prange` iteration.

Three forms of the same computation:

- `attention_forward` / `attention_backward`: plain numpy, the readable version;
- `attention_forward_fused` / `attention_backward_fused`: Numba, all heads in one
  compiled call, `parallel=True` with `prange` over heads (same signatures);
- `attention_forward_into` / `attention_backward_into` (serial) and their
  `*_parallel_into` twins: the same Numba loops writing into caller-owned
  buffers, for compiled callers such as the numpy backend's position step.

Everything compiles lazily on first call (cache=True); nothing runs at import.
Whether the parallel form pays depends on the work per call and the threading
layer (docs/threads.md): `use_parallel` makes that choice for callers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .. import envvars


# -- plain numpy ---------------------------------------------------------------


def attention_forward(q, k, v, n_head):
    # q (C,), k, v (t, C) -> out (C,), att (H, t)
    t, C = k.shape
    hd = C // n_head
    qh = q.reshape(n_head, hd)
    kh = k.reshape(t, n_head, hd)
    vh = v.reshape(t, n_head, hd)
    scores = np.einsum("hd,thd->ht", qh, kh) * (1.0 / math.sqrt(hd))
    exps = np.exp(scores - scores.max(axis=1, keepdims=True))
    att = exps / exps.sum(axis=1, keepdims=True)
    out = np.einsum("ht,thd->hd", att, vh).reshape(C)
    return out, att


def attention_backward(dout, q, k, v, att, n_head):
    # dout (C,), q (C,), k, v (t, C), att (H, t) -> dq (C,), dk, dv (t, C)
    t, C = k.shape
    hd = C // n_head
    dout_h = dout.reshape(n_head, hd)
    qh = q.reshape(n_head, hd)
    kh = k.reshape(t, n_head, hd)
    vh = v.reshape(t, n_head, hd)
    datt = np.einsum("hd,thd->ht", dout_h, vh)
    dv = np.einsum("ht,hd->thd", att, dout_h).reshape(t, C)
    # softmax backward: ds = a * (da - sum(a * da))
    dscores = att * (datt - np.sum(att * datt, axis=1, keepdims=True)) * (1.0 / math.sqrt(hd))
    dq = np.einsum("ht,thd->hd", dscores, kh).reshape(C)
    dk = np.einsum("ht,hd->thd", dscores, qh).reshape(t, C)
    return dq, dk, dv


# -- Numba: one head ------------------------------------------------------------
# The loops follow the python backend's order of operations (left folds from 0,
# max-subtracted softmax, e * total**-1), so in float64 the forward reproduces it.
# Every accumulator and constant is of the arrays' dtype (`scale` too, from the
# callers): a literal would be float64 and widen a float32 run's arithmetic.


@njit(cache=True)
def _head_forward(out, att, q, k, v, h, hd, scale):
    # writes out[h*hd:(h+1)*hd] and att[h, :t]
    t = k.shape[0]
    s = h * hd
    zero = q.dtype.type(0)
    top = q.dtype.type(-np.inf)
    for u in range(t):
        acc = zero
        for j in range(hd):
            acc += q[s + j] * k[u, s + j]
        att[h, u] = acc * scale
        top = max(top, att[h, u])
    total = zero
    for u in range(t):
        att[h, u] = math.exp(att[h, u] - top)
        total += att[h, u]
    inv_total = q.dtype.type(1) / total  # total**-1, which Numba would take in float64
    for u in range(t):
        att[h, u] = att[h, u] * inv_total
    for j in range(hd):
        acc = zero
        for u in range(t):
            acc += att[h, u] * v[u, s + j]
        out[s + j] = acc


@njit(cache=True)
def _head_backward(dq, dk, dv, dout, q, k, v, att, h, hd, scale):
    # writes dq[h*hd:(h+1)*hd]; adds into dk, dv[:t, h*hd:(h+1)*hd]
    t = k.shape[0]
    s = h * hd
    # da_u = dout_h . v_u, and sum_u a_u da_u for the softmax backward
    zero = att.dtype.type(0)
    weighted = zero
    da = np.empty(t, dtype=att.dtype)
    for u in range(t):
        acc = zero
        for j in range(hd):
            acc += dout[s + j] * v[u, s + j]
            dv[u, s + j] += att[h, u] * dout[s + j]
        da[u] = acc
        weighted += att[h, u] * acc
    for j in range(hd):
        dq[s + j] = zero
    for u in range(t):
        ds = att[h, u] * (da[u] - weighted) * scale
        for j in range(hd):
            dq[s + j] += ds * k[u, s + j]
            dk[u, s + j] += ds * q[s + j]


# -- Numba: all heads, into caller buffers ---------------------------------------


@njit(cache=True)
def attention_forward_into(out, att, q, k, v, n_head):
    # out (C,), att (H, >=t) written; q (C,), k, v (t, C)
    hd = q.shape[0] // n_head
    scale = q.dtype.type((hd ** 0.5) ** -1)
    for h in range(n_head):
        _head_forward(out, att, q, k, v, h, hd, scale)


@njit(cache=True, parallel=True)
def attention_forward_parallel_into(out, att, q, k, v, n_head):
    hd = q.shape[0] // n_head
    scale = q.dtype.type((hd ** 0.5) ** -1)
    for h in prange(n_head):
        _head_forward(out, att, q, k, v, h, hd, scale)


@njit(cache=True)
def attention_backward_into(dq, dk, dv, dout, q, k, v, att, n_head):
    # dq (C,) written; dk, dv (t, C) accumulated (+=), as a KV cache's gradient is
    hd = q.shape[0] // n_head
    scale = q.dtype.type((hd ** 0.5) ** -1)
    for h in range(n_head):
        _head_backward(dq, dk, dv, dout, q, k, v, att, h, hd, scale)


@njit(cache=True, parallel=True)
def attention_backward_parallel_into(dq, dk, dv, dout, q, k, v, att, n_head):
    hd = q.shape[0] // n_head
    scale = q.dtype.type((hd ** 0.5) ** -1)
    for h in prange(n_head):
        _head_backward(dq, dk, dv, dout, q, k, v, att, h, hd, scale)


# -- Numba: the API's fused pair (allocating, same signatures as the numpy pair) --


@njit(cache=True, parallel=True)
def attention_forward_fused(q, k, v, n_head):
    # q (C,), k, v (t, C) -> out (C,), att (H, t)
    t, C = k.shape
    hd = C // n_head
    scale = q.dtype.type((hd ** 0.5) ** -1)
    out = np.empty(C, dtype=q.dtype)
    att = np.empty((n_head, t), dtype=q.dtype)
    for h in prange(n_head):
        _head_forward(out, att, q, k, v, h, hd, scale)
    return out, att


@njit(cache=True, parallel=True)
def attention_backward_fused(dout, q, k, v, att, n_head):
    # dout (C,), q (C,), k, v (t, C), att (H, t) -> dq (C,), dk, dv (t, C)
    t, C = k.shape
    hd = C // n_head
    scale = q.dtype.type((hd ** 0.5) ** -1)
    dq = np.empty(C, dtype=q.dtype)
    dk = np.zeros((t, C), dtype=q.dtype)
    dv = np.zeros((t, C), dtype=q.dtype)
    for h in prange(n_head):
        _head_backward(dq, dk, dv, dout, q, k, v, att, h, hd, scale)
    return dq, dk, dv


# -- when to go parallel ----------------------------------------------------------

# Below this many multiply-adds per call (H * t * head_dim, i.e. t * C) a parallel
# launch costs more than it saves on every layer and thread count we measured
# (docs/threads.md); the per-position backends stay far below it.
PARALLEL_MIN_WORK = envvars.whole_number("MICROGPT_PARALLEL_MIN_WORK", 1 << 20)


def use_parallel(t: int, n_embd: int, n_head: int) -> bool:
    """Whether one attention call over t cached positions is worth a parallel launch."""
    if n_head < 2 or t * n_embd < PARALLEL_MIN_WORK:
        return False  # decided without asking Numba for its thread pool, which would start it
    import numba

    return numba.get_num_threads() > 1
