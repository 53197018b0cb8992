"""One-query attention over a KV cache: numpy pair against the per-head reference and
finite differences; the Numba kernels (fused, serial and parallel into-buffer) against numpy."""

import numpy as np
import pytest

from gradcheck import assert_grad_close
from microgpt.kernels import attention as A
from reference import attention_reference

# (t cached positions, C, H): one position, one head, head_dim = 1, the names and alice widths
CASES = [(1, 8, 2), (5, 8, 2), (4, 8, 1), (3, 4, 4), (7, 16, 4), (12, 32, 4)]


def make(t, C, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    q, dout = rng.standard_normal((2, C))
    k, v = rng.standard_normal((2, t, C))
    return [a.astype(dtype) for a in (q, k, v, dout)]


@pytest.mark.parametrize("t,C,H", CASES)
def test_forward_matches_reference(t, C, H):
    q, k, v, _ = make(t, C)
    out, att = A.attention_forward(q, k, v, H)
    ref_out, ref_att = attention_reference(q, k, v, H)
    assert out.shape == (C,) and att.shape == (H, t)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(att, ref_att, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(att.sum(axis=1), 1.0)


@pytest.mark.parametrize("t,C,H", CASES)
def test_backward_matches_finite_differences(t, C, H):
    q, k, v, dout = make(t, C, seed=1)
    _, att = A.attention_forward(q, k, v, H)
    dq, dk, dv = A.attention_backward(dout, q, k, v, att, H)

    def loss():
        return float(A.attention_forward(q, k, v, H)[0] @ dout)

    assert_grad_close(dq, loss, q)
    assert_grad_close(dk, loss, k)
    assert_grad_close(dv, loss, v)


@pytest.mark.parametrize("t,C,H", CASES)
def test_fused_kernels_match_numpy(t, C, H):
    q, k, v, dout = make(t, C, seed=2)
    out, att = A.attention_forward(q, k, v, H)
    f_out, f_att = A.attention_forward_fused(q, k, v, H)
    np.testing.assert_allclose(f_out, out, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(f_att, att, rtol=1e-13, atol=1e-15)
    for got, want in zip(A.attention_backward_fused(dout, q, k, v, att, H),
                         A.attention_backward(dout, q, k, v, att, H)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("t,C,H", CASES[:4])
def test_into_kernels_write_forward_and_accumulate_cache_gradients(t, C, H, parallel):
    fwd = A.attention_forward_parallel_into if parallel else A.attention_forward_into
    bwd = A.attention_backward_parallel_into if parallel else A.attention_backward_into
    q, k, v, dout = make(t, C, seed=3)
    T = t + 3  # buffers sized for a longer context, as in a KV cache
    out = np.full(C, np.nan)
    att = np.full((H, T), np.nan)
    fwd(out, att, q, k, v, H)
    ref_out, ref_att = A.attention_forward(q, k, v, H)
    np.testing.assert_allclose(out, ref_out, rtol=1e-13)
    np.testing.assert_allclose(att[:, :t], ref_att, rtol=1e-13)
    assert np.isnan(att[:, t:]).all()  # nothing past the cache is touched

    dq = np.full(C, np.nan)
    dk, dv = np.ones((2, T, C))
    bwd(dq, dk[:t], dv[:t], dout, q, k, v, att[:, :t], H)
    ref_dq, ref_dk, ref_dv = A.attention_backward(dout, q, k, v, ref_att, H)
    np.testing.assert_allclose(dq, ref_dq, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dk[:t], 1 + ref_dk, rtol=1e-12)
    np.testing.assert_allclose(dv[:t], 1 + ref_dv, rtol=1e-12)
    assert (dk[t:] == 1).all() and (dv[t:] == 1).all()


def test_float32_kernels_stay_float32_and_close():
    q, k, v, dout = make(6, 16, dtype=np.float32)
    out, att = A.attention_forward(q, k, v, 4)
    f_out, f_att = A.attention_forward_fused(q, k, v, 4)
    assert out.dtype == att.dtype == f_out.dtype == f_att.dtype == np.float32
    np.testing.assert_allclose(f_out, out, rtol=1e-5, atol=1e-6)
    grads = A.attention_backward_fused(dout, q, k, v, f_att, 4)
    assert all(g.dtype == np.float32 for g in grads)
    ref = A.attention_backward(*(a.astype(np.float64) for a in (dout, q, k, v, att)), 4)
    for got, want in zip(grads, ref):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_use_parallel_needs_threads_heads_and_work(monkeypatch):
    import numba

    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    assert not A.use_parallel(128, 32, 4)  # our largest scenario: never worth a launch
    assert A.use_parallel(A.PARALLEL_MIN_WORK, 1, 4)
    assert not A.use_parallel(A.PARALLEL_MIN_WORK, 1, 1)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert not A.use_parallel(A.PARALLEL_MIN_WORK, 1, 4)
