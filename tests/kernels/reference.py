"""Plain, slow references for the kernels: loops and textbook formulas, no cleverness.

Each kernel's test compares its forward with the function here, and its
backward with central finite differences (see gradcheck.py).
"""

from __future__ import annotations

import math

import numpy as np


def matmul_reference(x, w):
    # x (..., IN), w (OUT, IN): y[..., o] = sum_i x[..., i] w[o, i], one dot product at a time
    rows = x.reshape(-1, x.shape[-1])
    y = np.zeros((rows.shape[0], w.shape[0]), dtype=x.dtype)
    for r in range(rows.shape[0]):
        for o in range(w.shape[0]):
            y[r, o] = sum(float(rows[r, i]) * float(w[o, i]) for i in range(w.shape[1]))
    return y.reshape(*x.shape[:-1], w.shape[0])


def rmsnorm_reference(x):
    rows = x.reshape(-1, x.shape[-1])
    y = np.empty_like(rows)
    for r, row in enumerate(rows):
        scale = (sum(float(v) * float(v) for v in row) / len(row) + 1e-5) ** -0.5
        y[r] = [float(v) * scale for v in row]
    return y.reshape(x.shape)


def activation_reference(x, kind):
    flat = [max(0.0, float(v)) for v in x.ravel()]
    if kind == "relu2":
        flat = [v ** 2 for v in flat]
    return np.array(flat, dtype=x.dtype).reshape(x.shape)


def softmax_xent_reference(logits, targets):
    # loss = logsumexp(logits) - logits[target], probs = exp(logits - logsumexp)
    losses, probs = [], []
    for row, t in zip(logits, targets):
        top = max(float(v) for v in row)
        lse = top + math.log(sum(math.exp(float(v) - top) for v in row))
        losses.append(lse - float(row[t]))
        probs.append([math.exp(float(v) - lse) for v in row])
    return np.array(losses, dtype=logits.dtype), np.array(probs, dtype=logits.dtype)


def adam_reference(p, g, m, v, lr, beta1, beta2, eps, step):
    """One scalar at a time, the formulas of SPEC §2; returns new (p, m, v)."""
    p, m, v = p.copy(), m.copy(), v.copy()
    for i in np.ndindex(p.shape):
        m[i] = beta1 * m[i] + (1 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] ** 2
        m_hat = m[i] / (1 - beta1 ** (step + 1))
        v_hat = v[i] / (1 - beta2 ** (step + 1))
        p[i] = p[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
    return p, m, v


def attention_reference(q, k, v, n_head):
    """One query over a KV cache, head by head: out (C,), att (H, t)."""
    t, C = k.shape
    hd = C // n_head
    out = np.zeros(C, dtype=q.dtype)
    att = np.zeros((n_head, t), dtype=q.dtype)
    for h in range(n_head):
        s = slice(h * hd, (h + 1) * hd)
        scores = [float(q[s] @ k[j, s]) / math.sqrt(hd) for j in range(t)]
        top = max(scores)
        exps = [math.exp(x - top) for x in scores]
        total = sum(exps)
        for j in range(t):
            att[h, j] = exps[j] / total
            out[s] += att[h, j] * v[j, s]
    return out, att


# -- accumulation width ------------------------------------------------------------
# A float32 kernel must sum in float32. These inputs make that visible: BIG ones
# followed by TINY values of 2**-25, below half an ulp of any running sum >= 1, so
# a float32 sum drops every one of them (in any order that starts each partial sum
# with a big value: up to 64 partial sums, more than any vectorised loop keeps),
# while a float64 sum keeps them: 64 + 8192 * 2**-25 = 64 + 2**-12, 32 float32 ulps
# away from 64.

BIG, TINY, N_BIG, N_TINY = 1.0, 2.0 ** -25, 64, 8192


def drift_values(n_big=N_BIG, n_tiny=N_TINY):
    """n_big BIG then n_tiny TINY (float64; exact in float32 too)."""
    return np.concatenate([np.full(n_big, BIG), np.full(n_tiny, TINY)])


def fold(values, acc):
    """The left fold from 0 of `values` with every partial sum rounded to the dtype `acc`."""
    return np.add.accumulate(np.asarray(values).astype(acc), dtype=acc)[-1] if len(values) else acc(0)


def ulps(a, b, dtype=np.float32):
    """|a - b| in units of the dtype's spacing at b (elementwise, float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b) / np.spacing(np.abs(b).astype(dtype)).astype(np.float64)


def assert_accumulates_in_float32(got, ref32, ref64, within=2, apart=8):
    """got (a float32 kernel's output) is within `within` ulps of the float32-accumulated reference and at
    least `apart` - `within` ulps from the float64-accumulated one (the inputs must set them `apart`)."""
    got = np.asarray(got)
    assert got.dtype == np.float32, got.dtype
    gap = ulps(ref64, ref32)
    assert np.max(gap) >= apart, f"the test's inputs do not separate the two references ({np.max(gap)} ulps)"
    worst = int(np.argmax(gap.ravel()))  # the element where float64 accumulation would show most
    off = ulps(got, ref32)
    assert np.max(off) <= within, (f"{np.max(off)} ulps from the float32-accumulated reference; "
                                   f"{ulps(got, ref64).ravel()[worst]} from the float64 one")
