"""causal_attention: forward against a per-position loop, backward against finite differences."""

import numpy as np
import pytest

from gradcheck import assert_grad_close
from microgpt.kernels.causal_attention import causal_attention_backward, causal_attention_forward
from reference import attention_reference


def causal_attention_reference(q, k, v, n_head):
    """Query by query: what the per-position forward with a KV cache does (reference.attention_reference)."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    lead = q.shape[:-2]
    out = np.zeros(q.shape, dtype=q.dtype)
    att = np.zeros((*lead, n_head, Tq, Tk), dtype=q.dtype)
    for b in np.ndindex(lead):
        for i in range(Tq):
            pos = Tk - Tq + i  # the cache holds keys 0..pos
            out[b][i], att[b][:, i, :pos + 1] = attention_reference(q[b][i], k[b][:pos + 1], v[b][:pos + 1], n_head)
    return out, att


# (leading dims, Tq, Tk, C, H): one position, one head, head_dim 1, batches, fewer queries than keys
SHAPES = [
    ((), 1, 1, 4, 1),
    ((), 1, 1, 1, 1),
    ((), 5, 5, 8, 2),
    ((), 6, 6, 3, 3),  # head_dim 1
    ((), 7, 7, 6, 1),  # one head
    ((2,), 4, 4, 8, 4),
    ((2, 3), 3, 3, 4, 2),
    ((), 1, 5, 8, 2),  # one decoding step over a cache of 5
    ((2,), 3, 6, 4, 2),
]


def _inputs(lead, Tq, Tk, C, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((*lead, Tq, C)).astype(dtype)
    k = rng.standard_normal((*lead, Tk, C)).astype(dtype)
    v = rng.standard_normal((*lead, Tk, C)).astype(dtype)
    return q, k, v


@pytest.mark.parametrize("lead,Tq,Tk,C,H", SHAPES)
def test_forward_matches_per_position_reference(lead, Tq, Tk, C, H):
    q, k, v = _inputs(lead, Tq, Tk, C, 0)
    out, att = causal_attention_forward(q, k, v, H)
    assert out.shape == q.shape and att.shape == (*lead, H, Tq, Tk)
    ref_out, ref_att = causal_attention_reference(q, k, v, H)
    np.testing.assert_allclose(att, ref_att, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("lead,Tq,Tk,C,H", SHAPES)
def test_the_future_gets_exactly_zero_weight(lead, Tq, Tk, C, H):
    q, k, v = _inputs(lead, Tq, Tk, C, 2)
    _, att = causal_attention_forward(q, k, v, H)
    future = np.triu(np.ones((Tq, Tk), dtype=bool), k=Tk - Tq + 1)
    assert np.all(att[..., future] == 0)
    assert np.all(att[..., ~future] > 0)
    np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-14)


def check_backward_by_finite_differences(forward, backward, lead, Tq, Tk, C, H, seed):
    q, k, v = _inputs(lead, Tq, Tk, C, seed)
    dout = np.random.default_rng(seed + 1).standard_normal(q.shape)
    _, att = forward(q, k, v, H)
    dq, dk, dv = backward(dout, q, k, v, att, H)
    assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape

    def loss():
        return float(np.sum(forward(q, k, v, H)[0] * dout))

    assert_grad_close(dq, loss, q)
    assert_grad_close(dk, loss, k)
    assert_grad_close(dv, loss, v)


@pytest.mark.parametrize("lead,Tq,Tk,C,H", SHAPES)
def test_backward_matches_finite_differences(lead, Tq, Tk, C, H):
    check_backward_by_finite_differences(causal_attention_forward, causal_attention_backward, lead, Tq, Tk, C, H, 1)


def test_later_positions_change_nothing_before_them():
    # why padding at the end of a document is harmless: the prefix's rows do not see it
    q, k, v = _inputs((2,), 9, 9, 8, 4)
    out, att = causal_attention_forward(q, k, v, 2)
    out5, att5 = causal_attention_forward(q[:, :5], k[:, :5], v[:, :5], 2)
    np.testing.assert_allclose(out[:, :5], out5, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(att[..., :5, :5], att5, rtol=1e-13, atol=1e-15)
    # and a zero gradient on the later rows puts exactly nothing on the prefix's inputs
    dout = np.random.default_rng(5).standard_normal(q.shape)
    dout[:, 5:] = 0
    dq, dk, dv = causal_attention_backward(dout, q, k, v, att, 2)
    dq5, dk5, dv5 = causal_attention_backward(dout[:, :5], q[:, :5], k[:, :5], v[:, :5], att5, 2)
    for full, prefix in ((dq, dq5), (dk, dk5), (dv, dv5)):
        assert np.all(full[:, 5:] == 0)
        np.testing.assert_allclose(full[:, :5], prefix, rtol=1e-12, atol=1e-14)


def test_one_query_equals_the_last_row_of_the_sequence():
    q, k, v = _inputs((), 6, 6, 8, 6)
    out, att = causal_attention_forward(q, k, v, 4)
    out1, att1 = causal_attention_forward(q[-1:], k, v, 4)
    np.testing.assert_allclose(out1[0], out[-1], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(att1[:, 0], att[:, -1], rtol=1e-13, atol=1e-15)


def test_large_scores_stay_finite():
    q, k, v = _inputs((), 4, 4, 4, 7)
    out, att = causal_attention_forward(q * 300, k * 300, v, 2)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(att))
    dq, dk, dv = causal_attention_backward(np.ones_like(q), q * 300, k * 300, v, att, 2)
    assert all(np.all(np.isfinite(d)) for d in (dq, dk, dv))


# -- the Numba softmax forms (`*_fused`) --------------------------------------------------

import microgpt.kernels.causal_attention as ca  # noqa: E402
from microgpt.kernels.causal_attention import (  # noqa: E402
    causal_attention_backward_fused, causal_attention_forward_fused)
from microgpt.kernels.fused_simd import VECTOR_BYTES  # noqa: E402


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("lead,Tq,Tk,C,H", SHAPES + [((3,), 19, 19, 8, 2), ((), 9, 33, 4, 2)])
def test_fused_matches_numpy(lead, Tq, Tk, C, H, parallel):
    # odd lengths on purpose: rows that are not whole vectors of 8 keys
    q, k, v = _inputs(lead, Tq, Tk, C, 6)
    dout = np.random.default_rng(7).standard_normal(q.shape)
    out, att = causal_attention_forward(q, k, v, H)
    out_f, att_f = causal_attention_forward_fused(q, k, v, H, parallel=parallel)
    np.testing.assert_allclose(att_f, att, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(out_f, out, rtol=1e-13, atol=1e-15)
    for got, want in zip(causal_attention_backward_fused(dout, q, k, v, att_f, H, parallel=parallel),
                         causal_attention_backward(dout, q, k, v, att, H)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("lead,Tq,Tk,C,H", [((), 6, 6, 3, 3), ((2,), 4, 4, 8, 4), ((), 2, 5, 4, 1)])
def test_fused_backward_matches_finite_differences(lead, Tq, Tk, C, H):
    check_backward_by_finite_differences(causal_attention_forward_fused, causal_attention_backward_fused,
                                         lead, Tq, Tk, C, H, 8)


def test_fused_reads_strided_views():
    # the batched backend passes q, k, v as column slices of one (B, T, 3C) projection
    rng = np.random.default_rng(10)
    qkv = rng.standard_normal((2, 7, 24))
    q, k, v = qkv[..., :8], qkv[..., 8:16], qkv[..., 16:]
    out, att = causal_attention_forward_fused(q, k, v, 2)
    ref_out, ref_att = causal_attention_forward(q.copy(), k.copy(), v.copy(), 2)
    np.testing.assert_allclose(out, ref_out, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("forward,backward", [(causal_attention_forward, causal_attention_backward),
                                              (causal_attention_forward_fused, causal_attention_backward_fused)])
def test_float32_stays_float32_and_is_accurate(forward, backward):
    q, k, v = _inputs((2,), 33, 33, 8, 11, dtype=np.float32)
    out, att = forward(q, k, v, 2)
    assert out.dtype == att.dtype == np.float32
    grads = backward(np.ones_like(out), q, k, v, att, 2)
    assert all(g.dtype == np.float32 for g in grads)
    ref_out, ref_att = causal_attention_reference(*(x.astype(np.float64) for x in (q, k, v)), 2)
    np.testing.assert_allclose(att, ref_att, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_is_accurate_and_never_denormal(dtype):
    # one row of scores spanning exp's whole range, down to where it underflows
    lowest = -110.0 if dtype == np.float32 else -760.0
    scores = np.linspace(lowest, 0.0, 40001).astype(dtype)
    got = scores.copy()
    ca._exp_visible(got, dtype(0), np.empty(VECTOR_BYTES // np.dtype(dtype).itemsize, dtype))  # one vector
    want = np.exp(scores.astype(np.float64))
    tiny = np.finfo(dtype).tiny
    assert not np.any((got != 0) & (np.abs(got) < tiny)), "denormal results"
    normal = want > 4 * tiny
    # the error of x itself (|x| ulp) dominates near the bottom of the range, as for any exp
    bound = 4 * np.finfo(dtype).eps * np.maximum(1.0, np.abs(scores[normal].astype(np.float64)))
    assert np.all(np.abs(got[normal] - want[normal]) <= bound * want[normal])
    assert np.all(got[want < tiny / 2] == 0)
    assert got[-1] == 1.0


def test_softmax_rows_underflow_to_exact_zeros():
    # a very peaked row: the small weights are exactly zero, not denormal (those are slow)
    s = np.array([[[0.0, -50.0, -95.0, -200.0]]], dtype=np.float32)
    a = np.broadcast_to(s, (1, 4, 4)).copy()
    ca._masked_softmax_numba(a)
    last = a[0, 3]
    assert last[0] == pytest.approx(1.0) and last[1] > 0
    assert last[2] == 0 and last[3] == 0
    assert np.all(np.triu(a[0], 1) == 0)
