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
