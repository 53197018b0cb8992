"""Kernel benchmarks that are also tests: every timed call's result is checked against a plain reference.

In the default test run (`--benchmark-disable`, pyproject addopts) each kernel
runs once and is checked; `pytest tests/benchmarks --benchmark-only` times
them, one table per kernel (`group`). `extra_info` carries the FLOPs of a call
so that microgpt.report can turn the times of `--benchmark-json` into GFLOP/s.

The references here are written for clarity, in float64, one head or one
position at a time, with the softmax Jacobian as an explicit matrix: a
different route to the same numbers than the kernels take.
"""

from __future__ import annotations

import math

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("numba")

from microgpt.kernels import activation as act_k  # noqa: E402
from microgpt.kernels import adam as adam_k  # noqa: E402
from microgpt.kernels import attention as attn_k  # noqa: E402
from microgpt.kernels import causal_attention as causal_k  # noqa: E402
from microgpt.kernels import matmul as matmul_k  # noqa: E402
from microgpt.kernels import rmsnorm as rmsnorm_k  # noqa: E402
from microgpt.kernels import xent as xent_k  # noqa: E402

# the two scenarios' sizes: sequence length T, width C, heads H, vocabulary V
SIZES = {"names": (16, 16, 4, 27), "alice": (128, 32, 4, 73)}
DTYPES = ["float64", "float32"]
TOL = {"float64": {"rtol": 1e-10, "atol": 1e-12}, "float32": {"rtol": 2e-4, "atol": 2e-5}}


@pytest.fixture(params=list(SIZES))
def size(request):
    return request.param


@pytest.fixture(params=DTYPES)
def dtype(request):
    return request.param


def normal(rng, dtype, *shape):
    return rng.standard_normal(shape).astype(dtype)


def tag(benchmark, kernel, size, dtype, flops=None):
    benchmark.group = kernel
    benchmark.extra_info.update({"kernel": kernel, "size": size, "dtype": dtype, "flops": flops})


def close(actual, expected, dtype):
    assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype}, expected {dtype}"
    np.testing.assert_allclose(actual.astype(np.float64), expected, **TOL[dtype])


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


# -- references -------------------------------------------------------------------


def softmax_ref(s):
    e = np.exp(s - s.max())
    return e / e.sum()


def attention_ref(q, k, v, H):
    """One query over t keys, one head at a time; out (C,), att (H, t), and the backward as a closure."""
    t, C = k.shape
    hd = C // H
    att = np.zeros((H, t))
    out = np.zeros(C)
    for h in range(H):
        sl = slice(h * hd, (h + 1) * hd)
        att[h] = softmax_ref(k[:, sl] @ q[sl] / math.sqrt(hd))
        out[sl] = att[h] @ v[:, sl]

    def backward(dout):
        dq, dk, dv = np.zeros(C), np.zeros((t, C)), np.zeros((t, C))
        for h in range(H):
            sl = slice(h * hd, (h + 1) * hd)
            a = att[h]
            jacobian = np.diag(a) - np.outer(a, a)  # d softmax / d scores, symmetric
            dscores = jacobian @ (v[:, sl] @ dout[sl]) / math.sqrt(hd)
            dv[:, sl] = np.outer(a, dout[sl])
            dq[sl] = dscores @ k[:, sl]
            dk[:, sl] = np.outer(dscores, q[sl])
        return dq, dk, dv

    return out, att, backward


# -- matmul -----------------------------------------------------------------------


def test_matmul_forward(benchmark, size, dtype):
    T, C, _, _ = SIZES[size]
    rng = np.random.default_rng(1)
    x, w = normal(rng, dtype, T, C), normal(rng, dtype, 4 * C, C)
    tag(benchmark, "matmul", size, dtype, flops=2 * T * C * 4 * C)
    y = benchmark(matmul_k.matmul_forward, x, w)
    x64, w64 = f64(x, w)
    close(y, np.stack([w64 @ x64[r] for r in range(T)]), dtype)  # y_r = W x_r, one row at a time


def test_matmul_backward(benchmark, size, dtype):
    T, C, _, _ = SIZES[size]
    rng = np.random.default_rng(2)
    x, w, dy = normal(rng, dtype, T, C), normal(rng, dtype, 4 * C, C), normal(rng, dtype, T, 4 * C)
    tag(benchmark, "matmul", size, dtype, flops=2 * 2 * T * C * 4 * C)
    dx, dw = benchmark(matmul_k.matmul_backward, dy, x, w)
    x64, w64, dy64 = f64(x, w, dy)
    # one outer product per row: dW = sum_r dy_r x_r^T, dx_r = W^T dy_r
    close(dw, sum(np.outer(dy64[r], x64[r]) for r in range(T)), dtype)
    close(dx, np.stack([w64.T @ dy64[r] for r in range(T)]), dtype)


# -- attention over a KV cache (per-position backends): numpy and the fused prange kernels -----


@pytest.fixture
def one_query(size, dtype):
    T, C, H, _ = SIZES[size]
    rng = np.random.default_rng(3)
    q, dout = normal(rng, dtype, C), normal(rng, dtype, C)
    k, v = normal(rng, dtype, T, C), normal(rng, dtype, T, C)
    return q, k, v, dout, H


@pytest.mark.parametrize("impl", ["numpy", "fused"])
def test_attention_forward(benchmark, size, dtype, one_query, impl):
    q, k, v, _, H = one_query
    T, C = k.shape
    fn = attn_k.attention_forward if impl == "numpy" else attn_k.attention_forward_fused
    if impl == "fused":
        attn_k.default_threading_layer()
        fn(q, k, v, H)  # compile (or load from the cache) outside the timing
    tag(benchmark, "attention", size, dtype, flops=4 * T * C)
    benchmark.extra_info["impl"] = impl
    out, att = benchmark(fn, q, k, v, H)
    ref_out, ref_att, _ = attention_ref(*f64(q, k, v), H)
    close(out, ref_out, dtype)
    close(att, ref_att, dtype)


@pytest.mark.parametrize("impl", ["numpy", "fused"])
def test_attention_backward(benchmark, size, dtype, one_query, impl):
    q, k, v, dout, H = one_query
    T, C = k.shape
    _, att, backward = attention_ref(*f64(q, k, v), H)
    att = att.astype(dtype)
    fn = attn_k.attention_backward if impl == "numpy" else attn_k.attention_backward_fused
    if impl == "fused":
        attn_k.default_threading_layer()
        fn(dout, q, k, v, att, H)
    tag(benchmark, "attention", size, dtype, flops=8 * T * C)
    benchmark.extra_info["impl"] = impl
    dq, dk, dv = benchmark(fn, dout, q, k, v, att, H)
    for got, want in zip((dq, dk, dv), backward(dout.astype(np.float64))):
        close(got, want, dtype)


# -- causal attention over a whole sequence (batched backend) -----------------------


def test_causal_attention_forward_and_backward(benchmark, size, dtype):
    T, C, H, _ = SIZES[size]
    rng = np.random.default_rng(4)
    q, k, v, dout = (normal(rng, dtype, T, C) for _ in range(4))
    tag(benchmark, "causal_attention", size, dtype, flops=3 * 2 * C * T * (T + 1))  # fwd 2CT(T+1), bwd twice

    def step():
        out, att = causal_k.causal_attention_forward(q, k, v, H)
        return out, att, causal_k.causal_attention_backward(dout, q, k, v, att, H)

    out, att, (dq, dk, dv) = benchmark(step)
    # row t is the per-position attention of query t over keys 0..t; the KV gradients add up over queries
    q64, k64, v64, dout64 = f64(q, k, v, dout)
    ref_dq, ref_dk, ref_dv = np.zeros((T, C)), np.zeros((T, C)), np.zeros((T, C))
    for t in range(T):
        out_t, att_t, backward = attention_ref(q64[t], k64[:t + 1], v64[:t + 1], H)
        close(out[t], out_t, dtype)
        close(att[:, t, :t + 1], att_t, dtype)
        assert not att[:, t, t + 1:].any(), "a query attended to a later position"
        dq_t, dk_t, dv_t = backward(dout64[t])
        ref_dq[t] = dq_t
        ref_dk[:t + 1] += dk_t
        ref_dv[:t + 1] += dv_t
    for got, want in zip((dq, dk, dv), (ref_dq, ref_dk, ref_dv)):
        close(got, want, dtype)


# -- rmsnorm, activation, cross-entropy ----------------------------------------------


def test_rmsnorm_forward_and_backward(benchmark, size, dtype):
    T, C, _, _ = SIZES[size]
    rng = np.random.default_rng(5)
    x, dy = normal(rng, dtype, T, C), normal(rng, dtype, T, C)
    tag(benchmark, "rmsnorm", size, dtype)

    def step():
        y, rstd = rmsnorm_k.rmsnorm_forward(x)
        return y, rmsnorm_k.rmsnorm_backward(dy, y, rstd)

    y, dx = benchmark(step)
    for r, (row, drow) in enumerate(zip(*f64(x, dy))):
        scale = 1 / math.sqrt(np.mean(row * row) + 1e-5)
        yr = row * scale
        jacobian = scale * (np.eye(C) - np.outer(yr, yr) / C)  # d y / d x, symmetric
        close(y[r], yr, dtype)
        close(dx[r], jacobian @ drow, dtype)


@pytest.mark.parametrize("kind", ["relu", "relu2"])
def test_activation_forward_and_backward(benchmark, size, dtype, kind):
    T, C, _, _ = SIZES[size]
    rng = np.random.default_rng(6)
    x, dy = normal(rng, dtype, T, 4 * C), normal(rng, dtype, T, 4 * C)
    tag(benchmark, "activation", size, dtype)
    benchmark.extra_info["kind"] = kind

    def step():
        return act_k.activation_forward(x, kind), act_k.activation_backward(dy, x, kind)

    y, dx = benchmark(step)
    x64, dy64 = f64(x, dy)
    pos = np.where(x64 > 0, x64, 0.0)
    close(y, pos if kind == "relu" else pos ** 2, dtype)
    close(dx, dy64 * (x64 > 0) if kind == "relu" else dy64 * 2 * pos, dtype)


def test_cross_entropy_forward_and_backward(benchmark, size, dtype):
    T, _, _, V = SIZES[size]
    rng = np.random.default_rng(7)
    logits = normal(rng, dtype, T, V)
    targets = rng.integers(0, V, size=T)
    dlosses = np.full(T, 1.0 / T, dtype=dtype)
    tag(benchmark, "xent", size, dtype)

    def step():
        losses, probs = xent_k.softmax_xent_forward(logits, targets)
        return losses, xent_k.softmax_xent_backward(dlosses, probs, targets)

    losses, dlogits = benchmark(step)
    for r, row in enumerate(logits.astype(np.float64)):
        lse = math.log(sum(math.exp(z) for z in row))
        close(losses[r:r + 1], np.array([lse - row[targets[r]]]), dtype)
        onehot = np.eye(V)[targets[r]]
        close(dlogits[r], (np.exp(row - lse) - onehot) / T, dtype)


# -- Adam -------------------------------------------------------------------------


@pytest.mark.parametrize("n_params", [4192, 33344])
def test_adam_step(benchmark, n_params, dtype):
    rng = np.random.default_rng(8)
    p, g = normal(rng, dtype, n_params), normal(rng, dtype, n_params)
    m, v = normal(rng, dtype, n_params) * 0.1, np.abs(normal(rng, dtype, n_params)) * 0.01
    lr, b1, b2, eps, step = 0.01, 0.85, 0.99, 1e-8, 3
    # SPEC §2, one scalar at a time
    want = []
    for pi, gi, mi, vi in zip(*f64(p, g, m, v)):
        mi = b1 * mi + (1 - b1) * gi
        vi = b2 * vi + (1 - b2) * gi * gi
        want.append((pi - lr * (mi / (1 - b1 ** (step + 1))) / (math.sqrt(vi / (1 - b2 ** (step + 1))) + eps), mi, vi))
    want_p, want_m, want_v = (np.array(col) for col in zip(*want))
    tag(benchmark, "adam", str(n_params), dtype)

    def fresh():
        return (p.copy(), g, m.copy(), v.copy(), lr, b1, b2, eps, step), {}

    # every round starts from the same state, so the state after any round is the one to check
    state = {}

    def timed(pp, gg, mm, vv, *hyper):
        adam_k.adam_step(pp, gg, mm, vv, *hyper)
        state.update(p=pp, m=mm, v=vv)

    benchmark.pedantic(timed, setup=fresh, rounds=50, warmup_rounds=1)
    close(state["p"], want_p, dtype)
    close(state["m"], want_m, dtype)
    close(state["v"], want_v, dtype)
