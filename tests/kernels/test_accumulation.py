"""Every float32 kernel sums in float32: a kernel that widens (a `0.0` accumulator is float64 in Numba) fails here.

Each test feeds a kernel the drift inputs of reference.py, where a float32 sum
and a float64 sum end tens of ulps apart, and checks the kernel's float32
result against two references that differ only in the accumulator's dtype:
it must match the float32 one. The references round what the kernel stores
into its float32 arrays, as the kernel must; only the running sums and the
scalars in registers take the accumulator's dtype.

The fused backend's kernels are checked the same way in test_fused_layers.py.
The activation kernels sum nothing (and relu2's square is exact in float64
before its one rounding), so there is nothing there to widen.
"""

import math

import numpy as np
import pytest

from microgpt.kernels import attention as attn
from microgpt.kernels.adam import adam_step_fused
from microgpt.kernels.causal_attention import causal_attention_backward_fused, causal_attention_forward_fused
from microgpt.kernels.matmul import matvec_backward_into, matvec_forward_into
from microgpt.kernels.rmsnorm import EPS, rmsnorm_backward_into, rmsnorm_forward_into
from microgpt.kernels.xent import softmax_xent_forward_into
from microgpt.threads import default_threading_layer
from reference import BIG, N_BIG, N_TINY, TINY, assert_accumulates_in_float32, drift_values, fold

F32 = np.float32
ACCS = (np.float32, np.float64)  # the two references: float32 accumulators (right) and float64 (wrong)
LOG_TINY = math.log(TINY)  # a logit whose exp is TINY next to logits of 0


def both(reference, *args):
    """reference(*args, acc) for both accumulator dtypes, each result rounded to float32."""
    return [tuple(np.asarray(r).astype(F32) for r in reference(*args, acc)) for acc in ACCS]


# -- matmul ---------------------------------------------------------------------------------------


def test_matvec_forward_sums_in_float32():
    w = np.stack([drift_values(), np.ones(N_BIG + N_TINY)]).astype(F32)
    x = np.ones(w.shape[1], F32)
    y = np.empty(2, F32)
    matvec_forward_into(y, x, w)
    (r32,), (r64,) = both(lambda w, x, acc: ([fold(row * x, acc) for row in w],), w, x)
    assert_accumulates_in_float32(y, r32, r64)


def test_matvec_backward_sums_in_float32():
    w = np.stack([drift_values(), np.zeros(N_BIG + N_TINY)], axis=1).astype(F32)  # (OUT, 2): dx[0] sums a drift
    dy, x = np.ones(w.shape[0], F32), np.ones(2, F32)
    dx, dw = np.zeros(2, F32), np.zeros_like(w)
    matvec_backward_into(dx, dw, dy, x, w)
    (r32,), (r64,) = both(lambda w, dy, acc: ([fold(w[:, i] * dy, acc) for i in range(2)],), w, dy)
    assert_accumulates_in_float32(dx, r32, r64)


# -- rmsnorm --------------------------------------------------------------------------------------


def rmsnorm_ref(x, acc):
    ms = fold(x * x, acc)  # the squares are float32 products; their sum runs in acc
    rstd = (ms * acc(1.0 / x.size) + acc(EPS)) ** acc(-0.5)
    return x.astype(acc) * rstd, rstd


def test_rmsnorm_forward_sums_in_float32():
    x = np.sqrt(drift_values()).astype(F32)
    y = np.empty_like(x)
    rstd = rmsnorm_forward_into(y, x)
    (y32, r32), (y64, r64) = both(rmsnorm_ref, x)
    assert_accumulates_in_float32(np.float32(rstd), r32, r64)
    assert_accumulates_in_float32(y, y32, y64)


def test_rmsnorm_backward_sums_in_float32():
    # dot(dy, y) drifts; the last element (y = 1, dy = 0) gets dx = -rstd * mean, which shows it
    y = np.concatenate([drift_values(), [BIG]]).astype(F32)
    dy = np.concatenate([np.ones(N_BIG + N_TINY), [0.0]]).astype(F32)
    rstd = F32(1.0)

    def ref(dy, y, acc):
        mean = fold(dy * y, acc) / acc(y.size)
        return (acc(rstd) * (dy.astype(acc) - y.astype(acc) * mean),)

    dx = np.zeros_like(y)
    rmsnorm_backward_into(dx, dy, y, rstd)
    (r32,), (r64,) = both(ref, dy, y)
    assert_accumulates_in_float32(dx, r32, r64)


# -- softmax cross-entropy ------------------------------------------------------------------------


def test_softmax_xent_sums_in_float32():
    logits = np.concatenate([np.zeros(N_BIG), np.full(N_TINY, LOG_TINY)]).astype(F32)

    def ref(logits, acc):
        e = np.exp(logits)  # float32 exps, stored into probs; the total runs in acc
        total = fold(e, acc)
        return e * (acc(1) / total), math.log(total)

    probs = np.empty_like(logits)
    loss = softmax_xent_forward_into(probs, logits, 0)
    (p32, l32), (p64, l64) = both(ref, logits)
    assert_accumulates_in_float32(probs, p32, p64)
    assert_accumulates_in_float32(np.float32(loss), l32, l64, apart=4)


# -- attention over a KV cache: the serial, parallel and allocating forms --------------------------


def attention_head_ref(q, k, v, acc):
    """One head (all of q): scores, softmax and output with sums in acc; att rounded to float32 as stored."""
    scale = acc((q.size ** 0.5) ** -1)
    scores = np.array([fold(q * row, acc) for row in k], F32).astype(acc) * scale
    e = np.exp(scores.astype(F32) - scores.astype(F32).max())  # stored as float32, then summed
    total = fold(e, acc)
    att = (e.astype(acc) * (acc(1) / total)).astype(F32)
    out = np.array([fold(att * v[:, j], acc) for j in range(v.shape[1])])
    return out, att[None]


def run_forward(form, q, k, v):
    if form == "fused":
        return attn.attention_forward_fused(q, k, v, 1)
    out, att = np.empty_like(q), np.empty((1, k.shape[0]), q.dtype)
    (attn.attention_forward_into if form == "serial" else attn.attention_forward_parallel_into)(out, att, q, k, v, 1)
    return out, att


FORMS = ["serial", "parallel", "fused"]


@pytest.mark.parametrize("form", FORMS)
def test_attention_softmax_and_output_sum_in_float32(form):
    # many keys: the softmax total drifts (out[0] shows it: v = 1 on the big keys only), and so
    # would out[1], the sum of every probability, if only the output sum were widened
    t = N_BIG + N_TINY
    q = np.array([1.0, 0.0], F32)
    k = np.zeros((t, 2), F32)
    k[N_BIG:, 0] = LOG_TINY * math.sqrt(2)  # scores of LOG_TINY after the 1/sqrt(head_dim) scale
    v = np.ones((t, 2), F32)
    v[N_BIG:, 0] = 0
    default_threading_layer()
    out, att = run_forward(form, q, k, v)
    (o32, a32), (o64, a64) = both(attention_head_ref, q, k, v)
    assert_accumulates_in_float32(att, a32, a64)
    assert_accumulates_in_float32(out, o32, o64)


@pytest.mark.parametrize("form", FORMS)
def test_attention_scores_sum_in_float32(form):
    # a long head: the two keys' scores differ only by the drift, which moves the probabilities off 1/2
    q = np.full(N_BIG + N_TINY, 64.0, F32)
    k = np.stack([drift_values(), np.concatenate([np.ones(N_BIG), np.zeros(N_TINY)])]).astype(F32)
    v = np.stack([np.ones_like(q), np.zeros_like(q)])
    default_threading_layer()
    out, att = run_forward(form, q, k, v)
    (o32, a32), (o64, a64) = both(attention_head_ref, q, k, v)
    assert_accumulates_in_float32(att, a32, a64)


def attention_head_backward_ref(dout, q, k, v, att, acc):
    scale = acc((q.size ** 0.5) ** -1)
    a = att[0].astype(acc)
    da = np.array([fold(dout * row, acc) for row in v], F32).astype(acc)
    weighted = fold(att[0].astype(acc) * da, acc)
    ds = (a * (da - weighted) * scale).astype(F32)
    dq = np.array([fold(ds * k[:, j], acc) for j in range(k.shape[1])])
    return dq, ds[:, None] * q[None, :]


def run_backward(form, dout, q, k, v, att):
    if form == "fused":
        return attn.attention_backward_fused(dout, q, k, v, att, 1)
    dq, dk, dv = np.empty_like(q), np.zeros_like(k), np.zeros_like(v)
    fn = attn.attention_backward_into if form == "serial" else attn.attention_backward_parallel_into
    fn(dq, dk, dv, dout, q, k, v, att, 1)
    return dq, dk, dv


@pytest.mark.parametrize("form", FORMS)
def test_attention_backward_weighted_sum_in_float32(form):
    # sum_u a_u da_u over many keys drifts: in float32 (da - weighted) is exactly 0
    t = N_BIG + N_TINY
    att = np.concatenate([np.full(N_BIG, 1 / N_BIG), np.full(N_TINY, TINY / N_BIG)]).astype(F32)[None]
    v = np.full((t, 1), N_BIG, F32)  # every a_u da_u is then 1 (big keys) or TINY: each partial sum starts >= 1
    k = np.concatenate([np.ones(N_BIG), np.zeros(N_TINY)]).astype(F32)[:, None]
    q, dout = np.ones(1, F32), np.ones(1, F32)
    default_threading_layer()
    dq, dk, _ = run_backward(form, dout, q, k, v, att)
    (q32, k32), (q64, k64) = both(attention_head_backward_ref, dout, q, k, v, att)
    assert_accumulates_in_float32(dq, q32, q64)
    assert_accumulates_in_float32(dk, k32, k64)


@pytest.mark.parametrize("form", FORMS)
def test_attention_backward_head_dot_sums_in_float32(form):
    # dout . v over a long head drifts for key 0 only; in float32 both keys' da are equal and dscores 0
    hd = N_BIG + N_TINY
    dout = np.full(hd, 64.0, F32)
    v = np.stack([drift_values(), np.concatenate([np.ones(N_BIG), np.zeros(N_TINY)])]).astype(F32)
    k = np.stack([np.ones(hd), np.zeros(hd)]).astype(F32)
    q = np.ones(hd, F32)
    att = np.full((1, 2), 0.5, F32)
    default_threading_layer()
    dq, dk, _ = run_backward(form, dout, q, k, v, att)
    (q32, k32), (q64, k64) = both(attention_head_backward_ref, dout, q, k, v, att)
    assert_accumulates_in_float32(dq, q32, q64)
    assert_accumulates_in_float32(dk, k32, k64)


# -- causal attention over a sequence (the Numba softmax between BLAS products) --------------------


def test_causal_attention_softmax_sums_in_float32():
    # one query over many keys; head_dim 1 so the scores are the keys themselves
    k = np.concatenate([np.zeros(N_BIG), np.full(N_TINY, LOG_TINY)]).astype(F32)[:, None]
    v = np.concatenate([np.ones(N_BIG), np.zeros(N_TINY)]).astype(F32)[:, None]
    q = np.ones((1, 1), F32)

    def ref(k, v, acc):
        e = np.exp(k[:, 0])
        att = (e.astype(acc) * (acc(1) / fold(e, acc))).astype(F32)
        return att, [fold(att * v[:, 0], acc)]

    out, att = causal_attention_forward_fused(q, k, v, 1, parallel=False)
    (a32, o32), (a64, o64) = both(ref, k, v)
    assert_accumulates_in_float32(att[0, 0], a32, a64)
    assert_accumulates_in_float32(out[0], o32, o64)


def test_causal_attention_softmax_backward_sums_in_float32():
    att = np.concatenate([np.full(N_BIG, 1 / N_BIG), np.full(N_TINY, TINY / N_BIG)]).astype(F32)
    v = np.full((N_BIG + N_TINY, 1), N_BIG, F32)  # datt = v: each att * datt is 1 or TINY, as in the forward
    k = np.concatenate([np.ones(N_BIG), np.zeros(N_TINY)]).astype(F32)[:, None]
    q, dout = np.ones((1, 1), F32), np.ones((1, 1), F32)

    def ref(att, v, acc):
        datt = v[:, 0]
        ds = (att.astype(acc) * (datt - fold(att * datt, acc))).astype(F32)
        return ds, [fold(ds * k[:, 0], acc)]

    dq, dk, _ = causal_attention_backward_fused(dout, q, k, v, att[None, None], 1, parallel=False)
    (d32, q32), (d64, q64) = both(ref, att, v)
    assert_accumulates_in_float32(dk[:, 0], d32, d64)
    assert_accumulates_in_float32(dq[0], q32, q64)


# -- Adam: no sum, but the same rule for every operation ----------------------------------------------


def test_adam_is_float32_arithmetic_in_float32():
    # bit for bit the float32 operations; the same formula in float64 rounded once differs somewhere
    rng = np.random.default_rng(0)
    p, g, m = (rng.standard_normal(4096).astype(F32) for _ in range(3))
    v = np.abs(rng.standard_normal(4096)).astype(F32)
    lr, b1, b2, eps, step = 0.01, 0.85, 0.99, 1e-8, 2

    def ref(acc):
        c1, c2 = acc(1 - b1 ** (step + 1)), acc(1 - b2 ** (step + 1))
        mi = acc(b1) * m.astype(acc) + acc(1 - b1) * g.astype(acc)
        vi = acc(b2) * v.astype(acc) + acc(1 - b2) * (g.astype(acc) * g.astype(acc))
        return (p.astype(acc) - acc(lr) * (mi / c1) / (np.sqrt(vi / c2) + acc(eps))).astype(F32)

    got = p.copy()
    adam_step_fused(got, g, m.copy(), v.copy(), lr, b1, b2, eps, step)
    np.testing.assert_array_equal(got, ref(np.float32))
    assert np.any(got != ref(np.float64))
