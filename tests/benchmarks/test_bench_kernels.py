"""Kernel benchmarks that are also tests: every timed call's result is checked against a plain reference.

In the default test run (`--benchmark-disable`, pyproject addopts) each kernel
runs once and is checked; `pytest tests/benchmarks --benchmark-only` times
them, one table per kernel (`group`). `extra_info` carries the FLOPs of a call
so that microgpt.report can turn the times of `--benchmark-json` into GFLOP/s,
and `flops_convention` says how they are counted (FLOP_CONVENTION).

Each kernel is timed in the form a backend runs (`impl` says which); where that
is not the readable numpy kernel, the numpy one is timed beside it with `impl`
"reference". The fused backend's layers (microgpt/kernels/fused_*) are at the
end, each checked here too (their full tests are tests/kernels/test_fused_*.py).

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
from microgpt.threads import default_threading_layer  # noqa: E402

# the two scenarios' sizes: sequence length T, width C, heads H, vocabulary V
SIZES = {"names": (16, 16, 4, 27), "alice": (128, 32, 4, 73)}
# How `flops` is counted: the model's FLOPs, not the machine's. A multiply-add is 2 FLOPs; causal attention
# counts only the causal half of the T x T score square (T(T+1)/2 query-key pairs), although the BLAS
# kernels compute the whole square and the fused one whole blocks of vector-width queries.
FLOP_CONVENTION = "model FLOPs: 2 per multiply-add; attention: the causal half of the T x T square"
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


def tag(benchmark, kernel, size, dtype, flops=None, impl=None):
    benchmark.group = kernel
    benchmark.extra_info.update({"kernel": kernel, "size": size, "dtype": dtype, "flops": flops})
    if flops is not None:
        benchmark.extra_info["flops_convention"] = FLOP_CONVENTION
    if impl is not None:
        benchmark.extra_info["impl"] = impl


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


# -- attention over a KV cache: the serial compiled kernel the numpy backend runs, and the reference -----


@pytest.fixture
def one_query(size, dtype):
    T, C, H, _ = SIZES[size]
    rng = np.random.default_rng(3)
    q, dout = normal(rng, dtype, C), normal(rng, dtype, C)
    k, v = normal(rng, dtype, T, C), normal(rng, dtype, T, C)
    return q, k, v, dout, H


ATTENTION_IMPLS = ["numpy backend", "reference"]  # attention_*_into (inside its position step); plain numpy


def attention_forward_into(q, k, v, H):
    out, att = np.empty_like(q), np.empty((H, k.shape[0]), q.dtype)
    attn_k.attention_forward_into(out, att, q, k, v, H)
    return out, att


def attention_backward_into(dout, q, k, v, att, H):
    dq, dk, dv = np.empty_like(q), np.zeros_like(k), np.zeros_like(v)
    attn_k.attention_backward_into(dq, dk, dv, dout, q, k, v, att, H)
    return dq, dk, dv


@pytest.mark.parametrize("impl", ATTENTION_IMPLS)
def test_attention_forward(benchmark, size, dtype, one_query, impl):
    q, k, v, _, H = one_query
    T, C = k.shape
    fn = attention_forward_into if impl == "numpy backend" else attn_k.attention_forward
    fn(q, k, v, H)  # compile (or load from the cache) outside the timing
    tag(benchmark, "attention", size, dtype, flops=4 * T * C, impl=impl)
    out, att = benchmark(fn, q, k, v, H)
    ref_out, ref_att, _ = attention_ref(*f64(q, k, v), H)
    close(out, ref_out, dtype)
    close(att, ref_att, dtype)


@pytest.mark.parametrize("impl", ATTENTION_IMPLS)
def test_attention_backward(benchmark, size, dtype, one_query, impl):
    q, k, v, dout, H = one_query
    T, C = k.shape
    _, att, backward = attention_ref(*f64(q, k, v), H)
    att = att.astype(dtype)
    fn = attention_backward_into if impl == "numpy backend" else attn_k.attention_backward
    fn(dout, q, k, v, att, H)
    tag(benchmark, "attention", size, dtype, flops=8 * T * C, impl=impl)
    dq, dk, dv = benchmark(fn, dout, q, k, v, att, H)
    for got, want in zip((dq, dk, dv), backward(dout.astype(np.float64))):
        close(got, want, dtype)


# -- causal attention over a whole sequence: what numpy_batched runs, and the reference -----------------------


@pytest.mark.parametrize("impl", ["numpy_batched", "reference"])
def test_causal_attention_forward_and_backward(benchmark, size, dtype, impl):
    T, C, H, _ = SIZES[size]
    rng = np.random.default_rng(4)
    q, k, v, dout = (normal(rng, dtype, T, C) for _ in range(4))
    # fwd 2CT(T+1) (the causal half of QK^T and of att V), bwd twice that
    tag(benchmark, "causal_attention", size, dtype, flops=3 * 2 * C * T * (T + 1), impl=impl)
    if impl == "numpy_batched":  # causal_attention_*_fused: BLAS products around a Numba softmax
        forward, backward = causal_k.causal_attention_forward_fused, causal_k.causal_attention_backward_fused
        default_threading_layer()
    else:
        forward, backward = causal_k.causal_attention_forward, causal_k.causal_attention_backward

    def step():
        out, att = forward(q, k, v, H)
        return out, att, backward(dout, q, k, v, att, H)

    step()  # compile (or load) the Numba softmax outside the timing

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


# -- the fused backend's layers (microgpt/kernels/fused_layers.py, fused_simd.vexp) -----------------
# One document of the scenario's size in the buffers fused_model gives each layer; every call is
# checked against plain numpy in float64. Kernels that work in place get fresh inputs each round
# (benchmark.pedantic with a setup), so every timed call does the same work.


def fused():
    from microgpt.kernels import fused_layers

    return fused_layers


def lanes(dtype):
    return 32 // np.dtype(dtype).itemsize


def pedantic(benchmark, fn, make_args, rounds=50):
    """Time fn(*make_args()) with fresh arguments each round; the last round's arguments, to check."""
    last = {}

    def setup():
        last["args"] = make_args()
        return last["args"], {}

    fn(*make_args())  # compile (or load) outside the timing
    benchmark.pedantic(fn, setup=setup, rounds=rounds, warmup_rounds=1)
    return last["args"]


def test_fused_matmul_forward(benchmark, size, dtype):
    T, C, _, _ = SIZES[size]
    rng = np.random.default_rng(11)
    x, w = normal(rng, dtype, T, C), normal(rng, dtype, 4 * C, C)
    y, wT = np.zeros((T, 4 * C), dtype), np.ascontiguousarray(w.T)
    tag(benchmark, "fused matmul", size, dtype, flops=2 * T * C * 4 * C, impl="fused")
    fused().matmul_forward(y, x, wT, T)
    benchmark(fused().matmul_forward, y, x, wT, T)
    x64, w64 = f64(x, w)
    close(y, x64 @ w64.T, dtype)


def test_fused_matmul_backward(benchmark, size, dtype):
    T, C, _, _ = SIZES[size]
    rng = np.random.default_rng(12)
    x, w, dy = normal(rng, dtype, T, C), normal(rng, dtype, 4 * C, C), normal(rng, dtype, T, 4 * C)
    tag(benchmark, "fused matmul", size, dtype, flops=2 * 2 * T * C * 4 * C, impl="fused")
    # dW accumulates: a fresh zero gradient each round
    dx, dw, *_ = pedantic(benchmark, fused().matmul_backward,
                          lambda: (np.zeros((T, C), dtype), np.zeros((4 * C, C), dtype), dy, x, w, T, False))
    x64, w64, dy64 = f64(x, w, dy)
    close(dx, dy64 @ w64, dtype)
    close(dw, dy64.T @ x64, dtype)


def test_fused_rmsnorm_forward_and_backward(benchmark, size, dtype):
    T, C, _, _ = SIZES[size]
    rng = np.random.default_rng(13)
    x, dy = normal(rng, dtype, T, C), normal(rng, dtype, T, C)
    y, rstd, dx = np.zeros((T, C), dtype), np.zeros(T, dtype), np.zeros((T, C), dtype)
    tag(benchmark, "fused rmsnorm", size, dtype, impl="fused")

    def step():
        fused().rmsnorm_forward(y, rstd, x, T)
        dx[:] = 0  # the backward adds into dx
        fused().rmsnorm_backward(dx, dy, y, rstd, T)

    step()
    benchmark(step)
    x64, dy64 = f64(x, dy)
    r = 1 / np.sqrt(np.mean(x64 * x64, axis=1, keepdims=True) + 1e-5)
    y64 = x64 * r
    close(y, y64, dtype)
    close(dx, r * (dy64 - y64 * np.mean(dy64 * y64, axis=1, keepdims=True)), dtype)


@pytest.mark.parametrize("kind", ["relu", "relu2"])
def test_fused_activation_forward_and_backward(benchmark, size, dtype, kind):
    T, C, _, _ = SIZES[size]
    rng = np.random.default_rng(14)
    h, da = normal(rng, dtype, T, 4 * C), normal(rng, dtype, T, 4 * C)
    a, dh = np.zeros_like(h), np.zeros_like(h)
    code = fused().RELU if kind == "relu" else fused().RELU2
    tag(benchmark, "fused activation", size, dtype, impl="fused")
    benchmark.extra_info["kind"] = kind

    def step():
        fused().activation_forward(a, h, T, code)
        fused().activation_backward(dh, da, h, T, code)

    step()
    benchmark(step)
    h64, da64 = f64(h, da)
    r = np.maximum(h64, 0)
    close(a, r if kind == "relu" else r * r, dtype)
    close(dh, da64 * (h64 > 0) if kind == "relu" else da64 * 2 * r, dtype)


def test_fused_attention_forward_and_backward(benchmark, size, dtype):
    T, C, H, _ = SIZES[size]
    rng = np.random.default_rng(15)
    qkv, dao = normal(rng, dtype, T, 3 * C), normal(rng, dtype, T, C)
    Tp = (T + lanes(dtype) - 1) // lanes(dtype) * lanes(dtype)
    ao, qT, att = np.zeros((T, C), dtype), np.zeros((C, Tp), dtype), np.zeros((H, T, Tp), dtype)
    dqkv, dS, daoT = np.zeros((T, 3 * C), dtype), np.zeros((T, Tp), dtype), np.zeros((C, Tp), dtype)
    scale = 1 / math.sqrt(C // H)
    tag(benchmark, "fused attention", size, dtype, flops=3 * 2 * C * T * (T + 1), impl="fused")

    def step():
        fused().attention_forward(ao, att, qT, qkv, 0, T, H, scale)
        fused().attention_backward(dqkv, dS, daoT, dao, att, qT, qkv, T, H, scale)

    step()
    benchmark(step)
    q64, dao64 = f64(qkv, dao)
    ref_dq, ref_dk, ref_dv = np.zeros((T, C)), np.zeros((T, C)), np.zeros((T, C))
    for t in range(T):  # query t over keys 0..t, the per-position reference; its KV gradients add up
        out_t, att_t, backward = attention_ref(q64[t, :C], q64[:t + 1, C:2 * C], q64[:t + 1, 2 * C:], H)
        close(ao[t], out_t, dtype)
        close(att[:, :t + 1, t], att_t, dtype)
        dq_t, dk_t, dv_t = backward(dao64[t])
        ref_dq[t] = dq_t
        ref_dk[:t + 1] += dk_t
        ref_dv[:t + 1] += dv_t
    close(dqkv, np.concatenate([ref_dq, ref_dk, ref_dv], axis=1), dtype)


def test_fused_cross_entropy_forward_and_backward(benchmark, size, dtype):
    T, _, _, V = SIZES[size]
    rng = np.random.default_rng(16)
    Tp = (T + lanes(dtype) - 1) // lanes(dtype) * lanes(dtype)
    logits = np.zeros((V, Tp), dtype)
    logits[:, :T] = normal(rng, dtype, V, T)
    targets = rng.integers(0, V, T + 1).astype(np.int32)
    losses = np.zeros(T, dtype)
    tag(benchmark, "fused xent", size, dtype, impl="fused")

    def step(probsT):  # in place: logits -> probabilities -> d loss / d logits
        fused().softmax_xent_forward(losses, probsT, targets, 0, T, V)
        fused().softmax_xent_backward(probsT, targets, T, V, 1.0 / T)

    (dlogits,) = pedantic(benchmark, step, lambda: (logits.copy(),))
    for t, row in enumerate(logits[:, :T].T.astype(np.float64)):
        lse = math.log(sum(math.exp(z) for z in row))
        close(losses[t:t + 1], np.array([lse - row[targets[t]]]), dtype)
        close(dlogits[:, t], (np.exp(row - lse) - np.eye(V)[targets[t]]) / T, dtype)


def test_fused_embedding_forward_and_backward(benchmark, size, dtype):
    T, C, _, V = SIZES[size]
    rng = np.random.default_rng(17)
    wte, wpe, dx = normal(rng, dtype, V, C), normal(rng, dtype, T, C), normal(rng, dtype, T, C)
    tokens = rng.integers(0, V, T + 1).astype(np.int32)
    x = np.zeros((T, C), dtype)
    tag(benchmark, "fused embedding", size, dtype, impl="fused")

    def step(dwte, dwpe):
        fused().embedding_forward(x, tokens, wte, wpe, T)
        fused().embedding_backward(dwte, dwpe, dx, tokens, T)

    dwte, dwpe = pedantic(benchmark, step, lambda: (np.zeros((V, C), dtype), np.zeros((T, C), dtype)))
    wte64, wpe64, dx64 = f64(wte, wpe, dx)
    close(x, wte64[tokens[:T]] + wpe64, dtype)
    want = np.zeros((V, C))
    for t in range(T):  # one row at a time: a repeated token's rows add up
        want[tokens[t]] += dx64[t]
    close(dwte, want, dtype)
    close(dwpe, dx64, dtype)


@pytest.mark.parametrize("n_params", [4192, 33344])
def test_fused_adam_update(benchmark, n_params, dtype):
    rng = np.random.default_rng(18)
    rows = 32
    cols = n_params // rows
    p, g = normal(rng, dtype, n_params), normal(rng, dtype, n_params)
    m, v = normal(rng, dtype, n_params) * 0.1, np.abs(normal(rng, dtype, n_params)) * 0.01
    lr, b1, b2, eps, step = 0.01, 0.85, 0.99, 1e-8, 3
    c1, c2 = 1 - b1 ** (step + 1), 1 - b2 ** (step + 1)
    tag(benchmark, "fused adam", str(n_params), dtype, impl="fused")
    w, wT, _, mm, vv, *_ = pedantic(
        benchmark, fused().adam_update,
        lambda: (p.copy(), np.zeros_like(p), g.copy(), m.copy(), v.copy(), 0, rows, cols, True, lr, b1, b2, eps,
                 c1, c2, 0.0))
    p64, g64, m64, v64 = f64(p, g, m, v)
    want_m = b1 * m64 + (1 - b1) * g64
    want_v = b2 * v64 + (1 - b2) * g64 * g64
    close(mm, want_m, dtype)
    close(vv, want_v, dtype)
    close(w, p64 - lr * (want_m / c1) / (np.sqrt(want_v / c2) + eps), dtype)
    close(wT.reshape(cols, rows), w.reshape(rows, cols).T.astype(np.float64), dtype)


def test_fused_vexp(benchmark, size, dtype):
    from numba import njit

    from microgpt.kernels.fused_simd import vexp, vload, vstore, vwidth

    @njit
    def exp_rows(out, x):
        W = vwidth(x)
        for i in range(0, x.shape[0], W):
            vstore(out, i, vexp(vload(x, i)))

    T, _, _, V = SIZES[size]
    n = (T * V + lanes(dtype) - 1) // lanes(dtype) * lanes(dtype)  # a softmax's worth of exps, whole vectors
    x = (-20 * np.random.default_rng(19).random(n)).astype(dtype)  # exp(score - max): scores below the max
    out = np.empty_like(x)
    exp_rows(out, x)
    tag(benchmark, "fused vexp", size, dtype, impl="fused")
    benchmark(exp_rows, out, x)
    np.testing.assert_allclose(out, np.exp(x.astype(np.float64)), rtol=2 * float(np.finfo(dtype).eps), atol=0)
