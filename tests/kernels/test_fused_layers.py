"""fused_layers: every layer of the fused backend alone, against plain numpy, in float32 and float64.

Shapes are the awkward ones: one position, one head, head_dim 1, row lengths
that are not a multiple of the vector width (4 lanes in float64, 8 in float32)
so the scalar tails run, accumulate on and off, and buffers larger than what
is used (whatever lies outside the used part must be left as it was).
Backward passes are checked against central finite differences in float64,
through the kernel's own forward. In float32 the kernels must also sum in
float32 (the drift inputs of reference.py).

Numba compiles once per signature, so each test runs both dtypes on a few
shapes chosen to reach every code path, not on a grid of them.
"""

import math

import numpy as np
import pytest

from gradcheck import numerical_grad
from microgpt.kernels import fused_layers as L
from reference import N_BIG, N_TINY, TINY, assert_accumulates_in_float32, drift_values, fold

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=2e-5, atol=2e-6)}
GRAD_TOL = dict(rtol=1e-6, atol=1e-8)


def lanes(dtype):
    return 32 // np.dtype(dtype).itemsize


def normal(rng, dtype, *shape):
    return rng.standard_normal(shape).astype(dtype)


def close(got, want, dtype):
    assert got.dtype == dtype
    np.testing.assert_allclose(got.astype(np.float64), want, **TOL[dtype])


def assert_fd(analytic, f, x):
    np.testing.assert_allclose(analytic, numerical_grad(f, x), **GRAD_TOL)


def sentinel(dtype, *shape):
    """A buffer full of a marker value: what a kernel must not write stays it."""
    return np.full(shape, 7.25, dtype)


# -- matmul_rows: the register-blocked microkernel -------------------------------------------------


def matmul_cases(dtype):
    W = lanes(dtype)
    # (rows, k, c0, n_cols): 2x4 blocks + 4x1 vectors + a scalar tail; one row; one column; an offset start
    return [(5, 7, 0, 4 * W + W + 3), (1, 1, 0, 1), (3, 2, 3, 2 * W), (2, 5, 1, W - 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("a_layout", ["C", "transposed"])
def test_matmul_rows_matches_numpy(dtype, accumulate, a_layout):
    rng = np.random.default_rng(0)
    for rows, k, c0, n_cols in matmul_cases(dtype):
        a = normal(rng, dtype, rows + 1, k + 2)  # larger than used
        if a_layout == "transposed":  # a transposed view, as matmul_backward passes dy^T
            a = np.ascontiguousarray(a.T).T
        b = normal(rng, dtype, k + 1, c0 + n_cols + 2)
        out = normal(rng, dtype, rows + 2, c0 + n_cols + 2)
        before = out.copy()
        L.matmul_rows(out, a, b, rows, k, c0, n_cols, accumulate)
        cols = slice(c0, c0 + n_cols)
        want = a[:rows, :k].astype(np.float64) @ b[:k, cols].astype(np.float64)
        if accumulate:
            want += before[:rows, cols]
        close(out[:rows, cols], want, dtype)
        untouched = np.ones(out.shape, bool)
        untouched[:rows, cols] = False
        np.testing.assert_array_equal(out[untouched], before[untouched])


def test_matmul_rows_sums_in_float32():
    W = lanes(np.float32)
    n_cols = 4 * W + W + 1  # every path: blocks, single vectors, the scalar tail
    k = N_BIG + N_TINY
    b = np.repeat(drift_values()[:, None], n_cols, axis=1).astype(np.float32)
    a = np.ones((3, k), np.float32)
    out = np.zeros((3, n_cols), np.float32)
    L.matmul_rows(out, a, b, 3, k, 0, n_cols, False)
    ref32, ref64 = (np.full((3, n_cols), fold(b[:, 0], acc), np.float32) for acc in (np.float32, np.float64))
    assert_accumulates_in_float32(out, ref32, ref64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_forward_and_backward_match_numpy(dtype):
    rng = np.random.default_rng(1)
    for n, IN, OUT in [(1, 3, 5), (6, 13, 9)]:
        T = n + 2
        x, w, dy = normal(rng, dtype, T, IN), normal(rng, dtype, OUT, IN), normal(rng, dtype, T, OUT)
        y = sentinel(dtype, T, OUT)
        L.matmul_forward(y, x, np.ascontiguousarray(w.T), n)
        x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
        close(y[:n], x64[:n] @ w64.T, dtype)
        assert np.all(y[n:] == 7.25)
        for accumulate in (False, True):
            dx, dw = normal(rng, dtype, T, IN), normal(rng, dtype, OUT, IN)
            dx0, dw0 = dx.astype(np.float64), dw.astype(np.float64)
            L.matmul_backward(dx, dw, dy, x, w, n, accumulate)
            close(dx[:n], dy64[:n] @ w64 + (dx0[:n] if accumulate else 0), dtype)
            np.testing.assert_array_equal(dx[n:], dx0[n:].astype(dtype))
            close(dw, dw0 + dy64[:n].T @ x64[:n], dtype)  # dW always accumulates


def test_matmul_backward_is_the_gradient_of_the_forward():
    rng = np.random.default_rng(2)
    n, IN, OUT = 5, 6, 7
    x, w, g = rng.standard_normal((n, IN)), rng.standard_normal((OUT, IN)), rng.standard_normal((n, OUT))

    def loss():
        y = np.zeros((n, OUT))
        L.matmul_forward(y, x, np.ascontiguousarray(w.T), n)
        return float(np.sum(y * g))

    dx, dw = np.zeros_like(x), np.zeros_like(w)
    L.matmul_backward(dx, dw, g, x, w, n, False)
    assert_fd(dx, loss, x)
    assert_fd(dw, loss, w)


# -- rmsnorm -------------------------------------------------------------------------------------


def rmsnorm_numpy(x):
    rstd = 1 / np.sqrt(np.mean(x * x, axis=1) + 1e-5)
    return x * rstd[:, None], rstd


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,C", [(1, 1), (3, 5), (2, 19)])
def test_rmsnorm_forward_and_backward_match_numpy(dtype, n, C):
    rng = np.random.default_rng(3)
    x, dy = normal(rng, dtype, n + 1, C), normal(rng, dtype, n + 1, C)
    y, rstd = sentinel(dtype, n + 1, C), sentinel(dtype, n + 1)
    L.rmsnorm_forward(y, rstd, x, n)
    want_y, want_rstd = rmsnorm_numpy(x[:n].astype(np.float64))
    close(y[:n], want_y, dtype)
    close(rstd[:n], want_rstd, dtype)
    assert np.all(y[n:] == 7.25) and rstd[n] == 7.25
    dx = normal(rng, dtype, n + 1, C)  # the backward adds into dx
    dx0 = dx.astype(np.float64)
    L.rmsnorm_backward(dx, dy, y, rstd, n)
    y64, dy64 = y[:n].astype(np.float64), dy[:n].astype(np.float64)
    want = rstd[:n, None].astype(np.float64) * (dy64 - y64 * np.mean(dy64 * y64, axis=1, keepdims=True))
    close(dx[:n], dx0[:n] + want, dtype)
    np.testing.assert_array_equal(dx[n:], dx0[n:].astype(dtype))


def test_rmsnorm_backward_is_the_gradient_of_the_forward():
    rng = np.random.default_rng(4)
    n, C = 3, 7
    x, g = rng.standard_normal((n, C)), rng.standard_normal((n, C))

    def forward():
        y, rstd = np.zeros((n, C)), np.zeros(n)
        L.rmsnorm_forward(y, rstd, x, n)
        return y, rstd

    y, rstd = forward()
    dx = np.zeros_like(x)
    L.rmsnorm_backward(dx, g, y, rstd, n)
    assert_fd(dx, lambda: float(np.sum(forward()[0] * g)), x)


def test_rmsnorm_sums_in_float32():
    x = np.sqrt(drift_values()).astype(np.float32)[None]
    y, rstd = np.zeros_like(x), np.zeros(1, np.float32)
    L.rmsnorm_forward(y, rstd, x, 1)
    refs = []
    for acc in (np.float32, np.float64):
        ms = fold(x[0] * x[0], acc)
        refs.append(np.float32(acc(1) / np.sqrt(ms * acc(1 / x.shape[1]) + acc(1e-5))))
    assert_accumulates_in_float32(rstd[0], *refs)


# -- activation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", [L.RELU, L.RELU2])
def test_activation_forward_and_backward_match_numpy(dtype, kind):
    rng = np.random.default_rng(5)
    for n, F in [(1, 1), (3, 4 * 5), (2, 13)]:
        h, da = normal(rng, dtype, n + 1, F), normal(rng, dtype, n + 1, F)
        h[0, 0] = 0  # relu'(0) is 0, as in the other backends
        a, dh = sentinel(dtype, n + 1, F), sentinel(dtype, n + 1, F)
        L.activation_forward(a, h, n, kind)
        L.activation_backward(dh, da, h, n, kind)
        h64, da64 = h[:n].astype(np.float64), da[:n].astype(np.float64)
        r = np.maximum(h64, 0)
        close(a[:n], r if kind == L.RELU else r * r, dtype)
        close(dh[:n], da64 * (h64 > 0) if kind == L.RELU else da64 * 2 * r, dtype)
        assert np.all(a[n:] == 7.25) and np.all(dh[n:] == 7.25)


@pytest.mark.parametrize("kind", [L.RELU, L.RELU2])
def test_activation_backward_is_the_gradient_of_the_forward(kind):
    rng = np.random.default_rng(6)
    h = rng.standard_normal((3, 11))
    h[np.abs(h) < 1e-3] = 0.5  # no finite difference across the kink
    g = rng.standard_normal(h.shape)

    def loss():
        a = np.zeros_like(h)
        L.activation_forward(a, h, 3, kind)
        return float(np.sum(a * g))

    dh = np.zeros_like(h)
    L.activation_backward(dh, g, h, 3, kind)
    assert_fd(dh, loss, h)


# -- causal attention, all heads -----------------------------------------------------------------


def attention_numpy(qkv, n, H):
    """Per head, query t over keys 0..t: ao (n, C) and p[h, s, t] (the kernel's att layout), float64."""
    C = qkv.shape[1] // 3
    hd = C // H
    q, k, v = qkv[:n, :C], qkv[:n, C:2 * C], qkv[:n, 2 * C:]
    ao, p = np.zeros((n, C)), np.zeros((H, n, n))
    for h in range(H):
        s = slice(h * hd, (h + 1) * hd)
        scores = q[:, s] @ k[:, s].T / math.sqrt(hd)  # [t, s]
        scores[np.triu(np.ones((n, n), bool), 1)] = -np.inf
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        prob = e / e.sum(axis=1, keepdims=True)
        ao[:, s] = prob @ v[:, s]
        p[h] = prob.T
    return ao, p


class AttentionBuffers:
    """The buffers fused_model gives attention for one layer: T positions, rows padded to whole vectors."""

    def __init__(self, T, C, H, dtype):
        Tp = L.round_up(T, lanes(dtype))
        self.ao, self.qT = np.zeros((T, C), dtype), np.zeros((C, Tp), dtype)
        self.att = np.zeros((H, T, Tp), dtype)
        self.dqkv, self.dS, self.daoT = np.zeros((T, 3 * C), dtype), np.zeros((T, Tp), dtype), np.zeros((C, Tp), dtype)


# (T, n, C, H): one position; one head; head_dim 1; n not a multiple of either vector width; a full block
ATTENTION_SHAPES = [(1, 1, 4, 2), (6, 5, 3, 1), (11, 11, 4, 4), (16, 9, 8, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,n,C,H", ATTENTION_SHAPES)
def test_attention_forward_and_backward_match_numpy(dtype, T, n, C, H):
    rng = np.random.default_rng(7)
    qkv, dao = normal(rng, dtype, T, 3 * C), normal(rng, dtype, T, C)
    scale = 1 / math.sqrt(C // H)
    b = AttentionBuffers(T, C, H, dtype)
    L.attention_forward(b.ao, b.att, b.qT, qkv, 0, n, H, scale)
    want_ao, want_p = attention_numpy(qkv.astype(np.float64), n, H)
    close(b.ao[:n], want_ao, dtype)
    close(b.att[:, :n, :n], want_p, dtype)  # the masked half (key after query) exactly 0 in both
    L.attention_backward(b.dqkv, b.dS, b.daoT, dao, b.att, b.qT, qkv, n, H, scale)
    assert np.all(np.isfinite(b.dqkv))
    if dtype == np.float64:  # the gradient of sum(ao * dao) with respect to q, k and v
        x = qkv.copy()

        def loss():
            c = AttentionBuffers(T, C, H, dtype)
            L.attention_forward(c.ao, c.att, c.qT, x, 0, n, H, scale)
            return float(np.sum(c.ao[:n] * dao[:n]))

        numeric = numerical_grad(loss, x)
        np.testing.assert_allclose(b.dqkv[:n], numeric[:n], **GRAD_TOL)
    else:  # float32 against the float64 kernel's gradient on the same inputs
        c = AttentionBuffers(T, C, H, np.float64)
        q64, d64 = qkv.astype(np.float64), dao.astype(np.float64)
        L.attention_forward(c.ao, c.att, c.qT, q64, 0, n, H, scale)
        L.attention_backward(c.dqkv, c.dS, c.daoT, d64, c.att, c.qT, q64, n, H, scale)
        np.testing.assert_allclose(b.dqkv[:n], c.dqkv[:n], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_forward_continues_from_a_kv_cache(dtype):
    # t0 > 0 (sampling): queries t0..n-1 only, over the keys and values already in qkv; earlier rows untouched
    rng = np.random.default_rng(8)
    T, C, H = 13, 6, 2
    qkv = normal(rng, dtype, T, 3 * C)
    full, step = AttentionBuffers(T, C, H, dtype), AttentionBuffers(T, C, H, dtype)
    scale = 1 / math.sqrt(C // H)
    L.attention_forward(full.ao, full.att, full.qT, qkv, 0, T, H, scale)
    step.ao[:] = 7.25
    for t0 in (9, 10, 12):  # inside a vector block, at its start (float32: 8 lanes), the last position
        L.attention_forward(step.ao, step.att, step.qT, qkv, t0, t0 + 1, H, scale)
        close(step.ao[t0], full.ao[t0].astype(np.float64), dtype)
    assert np.all(step.ao[:9] == 7.25)


def test_attention_sums_in_float32():
    # one query over many keys (the big ones at 0, the tiny ones at LOG_TINY): the softmax total drifts
    n, C = N_BIG + N_TINY, 1
    qkv = np.zeros((n, 3), np.float32)
    qkv[:, 0] = 1.0
    qkv[N_BIG:, 1] = math.log(TINY)
    qkv[:N_BIG, 2] = 1.0
    b = AttentionBuffers(n, C, 1, np.float32)
    L.attention_forward(b.ao, b.att, b.qT, qkv, 0, n, 1, 1.0)
    e = np.exp(qkv[:, 1])
    refs = [np.float32(fold(e[:N_BIG], acc) / fold(e, acc)) for acc in (np.float32, np.float64)]
    assert_accumulates_in_float32(b.ao[n - 1, 0], *refs)  # the last query sees every key


# -- softmax + cross-entropy over the vocabulary ---------------------------------------------------


def xent_numpy(logits, targets):
    # logits (V, n) -> losses (n,), probs (V, n), from log-sum-exp
    top = logits.max(axis=0)
    lse = top + np.log(np.exp(logits - top).sum(axis=0))
    return lse - logits[targets, np.arange(logits.shape[1])], np.exp(logits - lse)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("V,n", [(1, 1), (2, 3), (27, 9)])
def test_softmax_xent_forward_and_backward_match_numpy(dtype, V, n):
    rng = np.random.default_rng(9)
    Tp = L.round_up(n, lanes(dtype))
    logits = np.zeros((V, Tp), dtype)
    logits[:, :n] = 3 * normal(rng, dtype, V, n)
    targets = rng.integers(0, V, n + 1).astype(np.int32)
    probsT, losses = logits.copy(), sentinel(dtype, n + 1)
    L.softmax_xent_forward(losses, probsT, targets, 0, n, V)
    want_losses, want_probs = xent_numpy(logits[:, :n].astype(np.float64), targets[:n])
    close(losses[:n], want_losses, dtype)
    close(probsT[:, :n], want_probs, dtype)
    assert losses[n] == 7.25
    L.softmax_xent_backward(probsT, targets, n, V, 0.25)
    onehot = np.eye(V)[:, targets[:n]]
    close(probsT[:, :n], (want_probs - onehot) * 0.25, dtype)


def test_softmax_xent_backward_is_the_gradient_of_the_forward():
    rng = np.random.default_rng(10)
    V, n = 5, 3
    logits = np.zeros((V, 4))
    logits[:, :n] = rng.standard_normal((V, n))
    targets = np.array([4, 0, 2, 0], np.int32)

    def loss():
        losses = np.zeros(n)
        L.softmax_xent_forward(losses, logits.copy(), targets, 0, n, V)
        return 0.5 * float(np.sum(losses))

    probsT = logits.copy()
    L.softmax_xent_forward(np.zeros(n), probsT, targets, 0, n, V)
    L.softmax_xent_backward(probsT, targets, n, V, 0.5)
    numeric = numerical_grad(loss, logits)
    np.testing.assert_allclose(probsT[:, :n], numeric[:, :n], **GRAD_TOL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_loss_is_finite_where_the_probability_underflows(dtype):
    # a target 150 below the top (float64: 1000): its probability is 0, its loss an ordinary number
    gap = 150.0 if dtype == np.float32 else 1000.0
    n = lanes(dtype) + 1
    logits = np.zeros((3, L.round_up(n, lanes(dtype))), dtype)
    logits[1, :n] = -gap
    targets = np.ones(n + 1, np.int32)
    probsT, losses = logits.copy(), np.zeros(n, dtype)
    L.softmax_xent_forward(losses, probsT, targets, 0, n, 3)
    assert np.all(probsT[1, :n] == 0)
    close(losses, np.full(n, gap + math.log(2)), dtype)
    L.softmax_xent_backward(probsT, targets, n, 3, 1.0)
    assert np.all(np.isfinite(probsT[:, :n]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_forward_from_a_later_position(dtype):
    # t0 > 0 (sampling): only positions t0..n-1 get a loss
    rng = np.random.default_rng(11)
    V, n = 4, lanes(dtype) + 3
    logits = np.zeros((V, L.round_up(n, lanes(dtype))), dtype)
    logits[:, :n] = normal(rng, dtype, V, n)
    targets = rng.integers(0, V, n + 1).astype(np.int32)
    losses = sentinel(dtype, n)
    L.softmax_xent_forward(losses, logits.copy(), targets, n - 2, n, V)
    close(losses[n - 2:], xent_numpy(logits[:, n - 2:n].astype(np.float64), targets[n - 2:n])[0], dtype)
    assert np.all(losses[:n - 2] == 7.25)


def test_softmax_xent_sums_in_float32():
    V = N_BIG + N_TINY
    logits = np.zeros((V, lanes(np.float32)), np.float32)
    logits[N_BIG:, 0] = math.log(TINY)
    probsT, losses = logits.copy(), np.zeros(1, np.float32)
    L.softmax_xent_forward(losses, probsT, np.zeros(2, np.int32), 0, 1, V)
    e = np.exp(logits[:, 0])
    refs = [(np.float32(1 / fold(e, acc)),) for acc in (np.float32, np.float64)]
    assert_accumulates_in_float32(probsT[0, 0], refs[0][0], refs[1][0])


# -- embeddings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_forward_and_backward_match_numpy(dtype):
    rng = np.random.default_rng(12)
    for V, T, C, n in [(3, 1, 1, 1), (5, 8, 7, 6)]:
        wte, wpe = normal(rng, dtype, V, C), normal(rng, dtype, T, C)
        tokens = rng.integers(0, V, T + 1).astype(np.int32)
        tokens[:2] = V - 1  # a repeated token: its gradient rows add up
        x = sentinel(dtype, T, C)
        L.embedding_forward(x, tokens, wte, wpe, n)
        close(x[:n], wte[tokens[:n]].astype(np.float64) + wpe[:n], dtype)
        assert np.all(x[n:] == 7.25)
        dx = normal(rng, dtype, T, C)
        dwte, dwpe = normal(rng, dtype, V, C), normal(rng, dtype, T, C)
        want_wte, want_wpe = dwte.astype(np.float64), dwpe.astype(np.float64)
        np.add.at(want_wte, tokens[:n], dx[:n].astype(np.float64))
        want_wpe[:n] += dx[:n]
        L.embedding_backward(dwte, dwpe, dx, tokens, n)
        close(dwte, want_wte, dtype)
        close(dwpe, want_wpe, dtype)


def test_embedding_backward_is_the_gradient_of_the_forward():
    rng = np.random.default_rng(15)
    V, T, C, n = 4, 6, 5, 5
    wte, wpe, g = rng.standard_normal((V, C)), rng.standard_normal((T, C)), rng.standard_normal((T, C))
    tokens = np.array([1, 3, 1, 0, 1, 2], np.int32)

    def loss():
        x = np.zeros((T, C))
        L.embedding_forward(x, tokens, wte, wpe, n)
        return float(np.sum(x[:n] * g[:n]))

    dwte, dwpe = np.zeros_like(wte), np.zeros_like(wpe)
    L.embedding_backward(dwte, dwpe, g, tokens, n)
    assert_fd(dwte, loss, wte)
    assert_fd(dwpe, loss, wpe)


# -- Adam ----------------------------------------------------------------------------------------


def adam_numpy(w, g, m, v, lr, b1, b2, eps, c1, c2, decay=0.0):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return w - decay * w - lr * (m / c1) / (np.sqrt(v / c2) + eps), m, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("decay", [0.0, 0.01])  # lr_t * weight_decay: AdamW's decoupled decay
def test_adam_update_matches_numpy(dtype, transpose, decay):
    rng = np.random.default_rng(13)
    off, rows, cols = 3, 4, 2 * lanes(dtype) + 3  # an offset and a scalar tail
    size = off + rows * cols + 5
    w, g, m = (normal(rng, dtype, size) for _ in range(3))
    v = np.abs(normal(rng, dtype, size))
    wT = sentinel(dtype, size)
    hyper = (0.01, 0.85, 0.99, 1e-8)
    c1, c2 = 1 - 0.85 ** 3, 1 - 0.99 ** 3
    before = [a.copy() for a in (w, g, m, v)]
    L.adam_update(w, wT, g, m, v, off, rows, cols, transpose, *hyper, c1, c2, decay)
    used = slice(off, off + rows * cols)
    want = adam_numpy(*(a[used].astype(np.float64) for a in before), *hyper, c1, c2, decay)
    for got, exp in zip((w, m, v), want):
        close(got[used], exp, dtype)
    assert np.all(g[used] == 0)  # left zeroed for the next step
    for got, old in zip((w, g, m, v), before):  # outside the matrix: untouched
        np.testing.assert_array_equal(got[:off], old[:off])
        np.testing.assert_array_equal(got[off + rows * cols:], old[off + rows * cols:])
    if transpose:
        np.testing.assert_array_equal(wT[used].reshape(cols, rows), w[used].reshape(rows, cols).T)
    else:
        assert np.all(wT == 7.25)


def test_adam_update_is_float32_arithmetic_in_float32():
    rng = np.random.default_rng(14)
    n = 1000
    w, g, m = (normal(rng, np.float32, n) for _ in range(3))
    v = np.abs(normal(rng, np.float32, n))
    lr, b1, b2, eps, c1, c2 = 0.01, 0.85, 0.99, 1e-8, 1 - 0.85 ** 3, 1 - 0.99 ** 3

    def ref(acc):  # the kernel's operations, in acc
        mi = acc(b1) * m.astype(acc) + acc(1 - b1) * g.astype(acc)
        vi = acc(b2) * v.astype(acc) + acc(1 - b2) * (g.astype(acc) * g.astype(acc))
        step = acc(lr) * (mi * acc(1 / c1)) / (np.sqrt(vi * acc(1 / c2)) + acc(eps))
        return (w.astype(acc) - step).astype(np.float32)

    got = w.copy()
    L.adam_update(got, got.copy(), g.copy(), m.copy(), v.copy(), 0, 1, n, False, lr, b1, b2, eps, c1, c2, 0.0)
    np.testing.assert_array_equal(got, ref(np.float32))
    assert np.any(got != ref(np.float64))
