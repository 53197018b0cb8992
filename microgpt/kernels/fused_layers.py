"""The fused backend's layers: forward/backward pairs over preallocated buffers.

Every function here is jitted, allocates nothing, and works on the first `n`
positions of its buffers. Most buffers are token-major, x[t, c] = feature c of
position t; a buffer named ...T is feature-major, xT[c, t], so that vectors run
over positions. Buffers may be larger than what is used (a document is shorter
than the block size, rows are padded to whole vectors) and padding is kept
finite, so vector lanes past the end compute harmless numbers that are never
stored into a result. The dtype is the buffers' own: the same code runs in
float32 and float64.

Weights are used in two layouts: `w` (OUT, IN) as stored (row-major [out][in],
SPEC §1) and its transpose `wT` (IN, OUT), which the forward matmuls sweep
with vectors; `adam_update` writes both.

    matmul_rows                  out (+)= a @ b, the register-blocked microkernel
    matmul_forward/backward      y = x W^T;  dx = dy W, dW += dy^T x
    rmsnorm_forward/backward
    activation_forward/backward  relu, relu2
    attention_forward/backward   causal, all heads; vectors over queries, so no horizontal sums
    softmax_xent_forward/backward  over the vocabulary; vectors over positions
    embedding_forward/backward
    adam_update                  SPEC §2 Adam over a range of the flat weights, refreshing wT
"""

from __future__ import annotations

import math

from numba import njit

from .fused_simd import (take, transposed, vexp, vlane, vload, vmask, vmax, vsplat, vsqrt, vstore, vsum,
                         vwhere_positive, vwidth)

JIT = dict(cache=True, error_model="numpy", nogil=True)
RELU, RELU2 = 0, 1
RMS_EPS = 1e-5


@njit(**JIT)
def round_up(n, multiple):
    return (n + multiple - 1) // multiple * multiple


# ----------------------------------------------------------------------------
# matmul


@njit(**JIT)
def _mm_2x4(out, a, b, r0, r1, c, n_k, accumulate):
    """Rows r0, r1 (equal for an odd last row) x 4 vectors of columns from c: 8 accumulators in registers."""
    W = vwidth(b)
    o0, o1 = take(out, r0), take(out, r1)
    if accumulate:
        x0, x1, x2, x3 = vload(o0, c), vload(o0, c + W), vload(o0, c + 2 * W), vload(o0, c + 3 * W)
        y0, y1, y2, y3 = vload(o1, c), vload(o1, c + W), vload(o1, c + 2 * W), vload(o1, c + 3 * W)
    else:
        x0 = x1 = x2 = x3 = y0 = y1 = y2 = y3 = vsplat(0.0, b)
    for k in range(n_k):
        bk = take(b, k)
        b0, b1, b2, b3 = vload(bk, c), vload(bk, c + W), vload(bk, c + 2 * W), vload(bk, c + 3 * W)
        s = vsplat(a[r0, k], b)
        x0, x1, x2, x3 = x0 + s * b0, x1 + s * b1, x2 + s * b2, x3 + s * b3
        s = vsplat(a[r1, k], b)
        y0, y1, y2, y3 = y0 + s * b0, y1 + s * b1, y2 + s * b2, y3 + s * b3
    vstore(o0, c, x0), vstore(o0, c + W, x1), vstore(o0, c + 2 * W, x2), vstore(o0, c + 3 * W, x3)
    vstore(o1, c, y0), vstore(o1, c + W, y1), vstore(o1, c + 2 * W, y2), vstore(o1, c + 3 * W, y3)


@njit(**JIT)
def _mm_4x1(out, a, b, r, n_rows, c, n_k, accumulate):
    """Rows r..r+3 (clamped to the last row) x 1 vector of columns from c."""
    r1, r2, r3 = min(r + 1, n_rows - 1), min(r + 2, n_rows - 1), min(r + 3, n_rows - 1)
    o0, o1, o2, o3 = take(out, r), take(out, r1), take(out, r2), take(out, r3)
    if accumulate:
        x0, x1, x2, x3 = vload(o0, c), vload(o1, c), vload(o2, c), vload(o3, c)
    else:
        x0 = x1 = x2 = x3 = vsplat(0.0, b)
    for k in range(n_k):
        bk = vload(take(b, k), c)
        x0 = x0 + vsplat(a[r, k], b) * bk
        x1 = x1 + vsplat(a[r1, k], b) * bk
        x2 = x2 + vsplat(a[r2, k], b) * bk
        x3 = x3 + vsplat(a[r3, k], b) * bk
    vstore(o3, c, x3), vstore(o2, c, x2), vstore(o1, c, x1), vstore(o0, c, x0)


@njit(**JIT)
def matmul_rows(out, a, b, n_rows, n_k, c0, n_cols, accumulate):
    """out[r, c0:c0+n_cols] (+)= sum_k a[r, k] * b[k, c0:c0+n_cols] for r < n_rows.

    out and b have contiguous rows; a is read one element at a time, so it may
    be a transposed view. Each output is summed over k in order starting from 0
    (or from its old value when accumulating), one rounding per product and per
    addition, like the reference's dot products.
    """
    W = vwidth(b)
    zero = out.dtype.type(0)  # not out[0, 0] * 0: float32 times an int is float64 in Numba
    c, end = c0, c0 + n_cols
    while c + 4 * W <= end:
        for r in range(0, n_rows, 2):
            _mm_2x4(out, a, b, r, min(r + 1, n_rows - 1), c, n_k, accumulate)
        c += 4 * W
    while c + W <= end:
        for r in range(0, n_rows, 4):
            _mm_4x1(out, a, b, r, n_rows, c, n_k, accumulate)
        c += W
    for cc in range(c, end):
        for r in range(n_rows):
            acc = out[r, cc] if accumulate else zero
            for k in range(n_k):
                acc += a[r, k] * b[k, cc]
            out[r, cc] = acc


@njit(**JIT)
def matmul_forward(y, x, wT, n):
    """y[:n] = x[:n] @ W^T, from wT = W^T (IN, OUT)."""
    matmul_rows(y, x, wT, n, wT.shape[0], 0, wT.shape[1], False)


@njit(**JIT)
def matmul_backward(dx, dw, dy, x, w, n, accumulate_dx):
    """dx[:n] (+)= dy[:n] @ W;  dW += dy[:n]^T @ x[:n].  w, dw (OUT, IN); dy may be a transposed view."""
    OUT, IN = w.shape
    matmul_rows(dx, dy, w, n, OUT, 0, IN, accumulate_dx)
    matmul_rows(dw, transposed(dy), x, OUT, n, 0, IN, True)


# ----------------------------------------------------------------------------
# elementwise helpers over one row


@njit(**JIT)
def _row_dot(x, y, n):
    W = vwidth(x)
    acc = vsplat(0.0, x)
    c = 0
    while c + W <= n:
        acc = acc + vload(x, c) * vload(y, c)
        c += W
    s = vsum(acc)
    for cc in range(c, n):
        s += x[cc] * y[cc]
    return s


@njit(**JIT)
def _row_scale(out, x, scale, n):
    """out[:n] = x[:n] * scale."""
    W = vwidth(x)
    sv = vsplat(scale, x)
    c = 0
    while c + W <= n:
        vstore(out, c, vload(x, c) * sv)
        c += W
    for cc in range(c, n):
        out[cc] = x[cc] * scale


@njit(**JIT)
def _row_add(out, x, y, n):
    """out[:n] = x[:n] + y[:n]; out may be x (adds y into it in place)."""
    W = vwidth(x)
    c = 0
    while c + W <= n:
        vstore(out, c, vload(x, c) + vload(y, c))
        c += W
    for cc in range(c, n):
        out[cc] = x[cc] + y[cc]


@njit(**JIT)
def zero_rows(x, n):
    zero = x.dtype.type(0.0)
    for t in range(n):
        row = take(x, t)
        for c in range(x.shape[1]):
            row[c] = zero


@njit(**JIT)
def add_rows(out, x, y, n):
    """out[:n] = x[:n] + y[:n] row by row (the residual connection)."""
    for t in range(n):
        _row_add(take(out, t), take(x, t), take(y, t), x.shape[1])


# ----------------------------------------------------------------------------
# rmsnorm: y = x / sqrt(mean(x^2) + 1e-5), no gain


@njit(**JIT)
def rmsnorm_forward(y, rstd, x, n):
    C = x.shape[1]
    inv_c = x.dtype.type(1.0 / C)
    eps = x.dtype.type(RMS_EPS)
    one = x.dtype.type(1.0)
    for t in range(n):
        xt = take(x, t)
        r = one / math.sqrt(_row_dot(xt, xt, C) * inv_c + eps)
        rstd[t] = r
        _row_scale(take(y, t), xt, r, C)


@njit(**JIT)
def rmsnorm_backward(dx, dy, y, rstd, n):
    """dx[:n] += rstd * (dy - y * mean(dy * y)): accumulates, so the residual branch adds itself."""
    C = y.shape[1]
    W = vwidth(y)
    inv_c = y.dtype.type(1.0 / C)
    for t in range(n):
        dyt, yt, dxt = take(dy, t), take(y, t), take(dx, t)
        mean = _row_dot(dyt, yt, C) * inv_c
        r = rstd[t]
        rv, mv = vsplat(r, y), vsplat(mean, y)
        c = 0
        while c + W <= C:
            vstore(dxt, c, vload(dxt, c) + rv * (vload(dyt, c) - vload(yt, c) * mv))
            c += W
        for cc in range(c, C):
            dxt[cc] += r * (dyt[cc] - yt[cc] * mean)


# ----------------------------------------------------------------------------
# MLP activation


@njit(**JIT)
def activation_forward(a, h, n, kind):
    """a = relu(h) or relu(h)**2."""
    F = h.shape[1]
    W = vwidth(h)
    zero = h.dtype.type(0.0)
    for t in range(n):
        ht, at = take(h, t), take(a, t)
        c = 0
        while c + W <= F:
            r = vmax(vload(ht, c), vsplat(0.0, h))
            vstore(at, c, r * r if kind == RELU2 else r)
            c += W
        for cc in range(c, F):
            r = zero if ht[cc] < 0 else ht[cc]
            at[cc] = r * r if kind == RELU2 else r


@njit(**JIT)
def activation_backward(dh, da, h, n, kind):
    """dh = da * relu'(h), or da * 2 relu(h) for relu2."""
    F = h.shape[1]
    W = vwidth(h)
    zero = h.dtype.type(0.0)
    for t in range(n):
        ht, dat, dht = take(h, t), take(da, t), take(dh, t)
        c = 0
        while c + W <= F:
            hv, dv = vload(ht, c), vload(dat, c)
            if kind == RELU2:
                r = vmax(hv, vsplat(0.0, h))
                vstore(dht, c, (r + r) * dv)
            else:
                vstore(dht, c, vwhere_positive(hv, dv))
            c += W
        for cc in range(c, F):
            if kind == RELU2:
                r = zero if ht[cc] < 0 else ht[cc]
                dht[cc] = (r + r) * dat[cc]
            else:
                dht[cc] = dat[cc] if ht[cc] > 0 else zero


# ----------------------------------------------------------------------------
# transposes


@njit(**JIT)
def transpose_into(dstT, src, col0, t0, n):
    """dstT[c, t] = src[t, col0 + c] for t0 <= t < n, then zeros up to a whole vector (padding stays finite)."""
    C = dstT.shape[0]
    end = min(round_up(n, vwidth(dstT)), dstT.shape[1])
    zero = src.dtype.type(0.0)
    for c in range(C):
        row = take(dstT, c)
        for t in range(t0, n):
            row[t] = src[t, col0 + c]
        for t in range(n, end):
            row[t] = zero


@njit(**JIT)
def _scatter_lanes(dst, col, v, t0, lo, hi):
    """dst[t, col] = lane t - t0 of v, for lo <= t < hi."""
    for t in range(lo, hi):
        dst[t, col] = vlane(v, t - t0)


# ----------------------------------------------------------------------------
# causal self-attention, all heads
#
# A block of W consecutive queries is one vector: the softmax over keys is then
# lane-wise (max, exp, sum down the keys), with no horizontal reduction on the
# way. att[h, s, t] is the probability of query t on key s; keys after a query
# are masked to -inf, so they get exactly 0. The two products below do 4 keys
# (or 4 head dimensions) at a time: 4 independent sums in flight instead of one
# chain of dependent additions, each still summed in the reference's order.


@njit(**JIT)
def _key_dots(out, xT, c0, rows, col, hd, tb, n_keys):
    """out[s, tb:tb+W] = sum_j xT[c0 + j, tb:tb+W] * rows[s, col + j] (j < hd), for keys s < n_keys."""
    s = 0
    while s + 4 <= n_keys:
        r0, r1, r2, r3 = take(rows, s), take(rows, s + 1), take(rows, s + 2), take(rows, s + 3)
        a0 = a1 = a2 = a3 = vsplat(0.0, xT)
        for j in range(hd):
            x = vload(take(xT, c0 + j), tb)
            a0 = a0 + x * vsplat(r0[col + j], xT)
            a1 = a1 + x * vsplat(r1[col + j], xT)
            a2 = a2 + x * vsplat(r2[col + j], xT)
            a3 = a3 + x * vsplat(r3[col + j], xT)
        vstore(take(out, s), tb, a0)
        vstore(take(out, s + 1), tb, a1)
        vstore(take(out, s + 2), tb, a2)
        vstore(take(out, s + 3), tb, a3)
        s += 4
    for s in range(s, n_keys):
        r0 = take(rows, s)
        a0 = vsplat(0.0, xT)
        for j in range(hd):
            a0 = a0 + vload(take(xT, c0 + j), tb) * vsplat(r0[col + j], xT)
        vstore(take(out, s), tb, a0)


@njit(**JIT)
def _weighted_rows(dst, dcol, p, rows, col, hd, tb, n_keys, lo, hi):
    """dst[t, dcol + j] = sum_s p[s, t] * rows[s, col + j] (s < n_keys, j < hd), for lo <= t < hi in block tb."""
    j = 0
    while j + 4 <= hd:
        a0 = a1 = a2 = a3 = vsplat(0.0, p)
        for s in range(n_keys):
            ps, r = vload(take(p, s), tb), take(rows, s)
            a0 = a0 + ps * vsplat(r[col + j], p)
            a1 = a1 + ps * vsplat(r[col + j + 1], p)
            a2 = a2 + ps * vsplat(r[col + j + 2], p)
            a3 = a3 + ps * vsplat(r[col + j + 3], p)
        _scatter_lanes(dst, dcol + j, a0, tb, lo, hi)
        _scatter_lanes(dst, dcol + j + 1, a1, tb, lo, hi)
        _scatter_lanes(dst, dcol + j + 2, a2, tb, lo, hi)
        _scatter_lanes(dst, dcol + j + 3, a3, tb, lo, hi)
        j += 4
    for j in range(j, hd):
        a0 = vsplat(0.0, p)
        for s in range(n_keys):
            a0 = a0 + vload(take(p, s), tb) * vsplat(rows[s, col + j], p)
        _scatter_lanes(dst, dcol + j, a0, tb, lo, hi)


@njit(**JIT)
def attention_forward(ao, att, qT, qkv, t0, n, n_head, scale):
    """ao[t] = per head softmax_s((q_t . k_s) * scale, s <= t) v_s, for queries t0 <= t < n.

    qkv (T, 3C) = [q | k | v] rows; rows < t0 must be there already (t0 = 0 for
    a whole document, t0 = pos when sampling one position: qkv is the KV
    cache). qT (C, Tp) receives the queries transposed; att (H, T, Tp) the
    probabilities.
    """
    C = ao.shape[1]
    hd = C // n_head
    W = vwidth(ao)
    transpose_into(qT, qkv, 0, t0, n)
    sc = vsplat(scale, ao)
    ninf = -math.inf
    for h in range(n_head):
        c0 = h * hd
        att_h = take(att, h)
        for tb in range(t0 - t0 % W, n, W):
            n_keys = min(tb + W, n)  # the block's last query sees keys 0..n_keys-1
            _key_dots(att_h, qT, c0, qkv, C + c0, hd, tb, n_keys)
            m = vsplat(ninf, ao)
            for s in range(n_keys):
                row = take(att_h, s)
                x = vmask(vload(row, tb) * sc, s - tb, W, ninf)  # queries t < s do not see key s
                vstore(row, tb, x)
                m = vmax(m, x)
            tot = vsplat(0.0, ao)
            for s in range(n_keys):
                row = take(att_h, s)
                e = vexp(vload(row, tb) - m)
                vstore(row, tb, e)
                tot = tot + e
            inv = vsplat(1.0, ao) / tot
            for s in range(n_keys):
                row = take(att_h, s)
                vstore(row, tb, vload(row, tb) * inv)
            _weighted_rows(ao, c0, att_h, qkv, 2 * C + c0, hd, tb, n_keys, max(tb, t0), n_keys)


@njit(**JIT)
def attention_backward(dqkv, dS, daoT, dao, att, qT, qkv, n, n_head, scale):
    """dqkv[:n] = [dq | dk | dv] from dao (n, C), for a whole document (t0 = 0).

    dS (T, Tp) and daoT (C, Tp) are scratch. Per head, first by blocks of
    queries: dp_s = dao_t . v_s, dscore_s = p_s (dp_s - sum_s' p_s' dp_s') * scale,
    dq_t = sum_s dscore_s k_s; then per key: dk_s = sum_t dscore_s,t q_t,
    dv_s = sum_t p_s,t dao_t.
    """
    C = dao.shape[1]
    hd = C // n_head
    W = vwidth(dao)
    transpose_into(daoT, dao, 0, 0, n)
    sc = vsplat(scale, dao)
    for h in range(n_head):
        c0 = h * hd
        att_h = take(att, h)
        for tb in range(0, n, W):
            n_keys = min(tb + W, n)
            _key_dots(dS, daoT, c0, qkv, 2 * C + c0, hd, tb, n_keys)  # dp
            dsum = vsplat(0.0, dao)
            for s in range(n_keys):
                dsum = dsum + vload(take(att_h, s), tb) * vload(take(dS, s), tb)
            for s in range(n_keys):
                row = take(dS, s)
                vstore(row, tb, vload(take(att_h, s), tb) * (vload(row, tb) - dsum) * sc)
            _weighted_rows(dqkv, c0, dS, qkv, C + c0, hd, tb, n_keys, tb, n_keys)  # dq
        # keys and values: sums over the queries t >= s (dS and att are 0 for t < s)
        for s in range(n):
            dst, ds_s, p_s = take(dqkv, s), take(dS, s), take(att_h, s)
            for j in range(hd):
                qr, dr = take(qT, c0 + j), take(daoT, c0 + j)
                acc_k = vsplat(0.0, dao)
                acc_v = vsplat(0.0, dao)
                for tb in range(s - s % W, n, W):
                    acc_k = acc_k + vload(ds_s, tb) * vload(qr, tb)
                    acc_v = acc_v + vload(p_s, tb) * vload(dr, tb)
                dst[C + c0 + j] = vsum(acc_k)
                dst[2 * C + c0 + j] = vsum(acc_v)


# ----------------------------------------------------------------------------
# softmax + cross-entropy over the vocabulary, positions in the lanes


@njit(**JIT)
def softmax_xent_forward(losses, probsT, targets, t0, n, V):
    """probsT[:V, t] = softmax of the logits probsT[:V, t], in place; losses[t] = -log softmax[targets[t]].

    For positions t0 <= t < n (whole vectors of them: lanes past n hold finite
    numbers that nothing reads). The loss is log(sum exp(logit - max)) minus the
    target's logit - max, never -log(probability): that probability underflows
    to 0 (below exp(-87) in float32) long before the loss stops being finite.
    """
    W = vwidth(probsT)
    ninf = -math.inf
    for tb in range(t0 - t0 % W, n, W):
        lo, hi = max(tb, t0), min(tb + W, n)
        m = vsplat(ninf, probsT)
        for c in range(V):
            m = vmax(m, vload(take(probsT, c), tb))
        for t in range(lo, hi):  # the shifted target logit, before the exps overwrite the logits
            losses[t] = probsT[targets[t], t] - vlane(m, t - tb)
        tot = vsplat(0.0, probsT)
        for c in range(V):
            e = vexp(vload(take(probsT, c), tb) - m)
            vstore(take(probsT, c), tb, e)
            tot = tot + e
        for t in range(lo, hi):
            losses[t] = math.log(vlane(tot, t - tb)) - losses[t]  # tot >= 1: log never sees 0
        inv = vsplat(1.0, probsT) / tot
        for c in range(V):
            vstore(take(probsT, c), tb, vload(take(probsT, c), tb) * inv)


@njit(**JIT)
def softmax_xent_backward(probsT, targets, n, V, dscale):
    """In place: probsT[:, t] becomes d loss / d logits = (probs - onehot(target)) * dscale, for t < n."""
    W = vwidth(probsT)
    end = round_up(n, W)
    ds = vsplat(dscale, probsT)
    for c in range(V):
        row = take(probsT, c)
        for tb in range(0, end, W):
            vstore(row, tb, vload(row, tb) * ds)
    for t in range(n):
        probsT[targets[t], t] -= dscale


# ----------------------------------------------------------------------------
# embeddings


@njit(**JIT)
def embedding_forward(x, tokens, wte, wpe, n):
    """x[t] = wte[tokens[t]] + wpe[t]."""
    for t in range(n):
        _row_add(take(x, t), take(wte, tokens[t]), take(wpe, t), x.shape[1])


@njit(**JIT)
def embedding_backward(dwte, dwpe, dx, tokens, n):
    """dwte[tokens[t]] += dx[t], dwpe[t] += dx[t] (out = out + dx: _row_add with out as its first input)."""
    C = dx.shape[1]
    for t in range(n):
        row = take(dwte, tokens[t])
        _row_add(row, row, take(dx, t), C)
        row = take(dwpe, t)
        _row_add(row, row, take(dx, t), C)


# ----------------------------------------------------------------------------
# Adam


@njit(**JIT)
def adam_update(w, wT, g, m, v, off, rows, cols, transpose, lr, beta1, beta2, eps, c1, c2, decay):
    """SPEC §2 Adam on the (rows, cols) matrix at `off` of the flat w, g, m, v.

    c1, c2 = 1 - beta1**(step+1), 1 - beta2**(step+1), the bias corrections; decay = lr_t * weight_decay,
    AdamW's decoupled decay (0: none, and the arithmetic of SPEC's Adam exactly).
    With `transpose`, also writes the new weights into wT as the (cols, rows)
    transpose at the same offset: the stores hide in the shadow of the square
    root and the division. Leaves g zeroed for the next step. m_hat = m / c1 is
    computed as m * (1/c1) (likewise v): within an ulp of the reference.
    """
    dt = w.dtype.type
    b1, b2, a1, a2 = dt(beta1), dt(beta2), dt(1.0 - beta1), dt(1.0 - beta2)
    lr_, eps_, ic1, ic2, dec = dt(lr), dt(eps), dt(1.0 / c1), dt(1.0 / c2), dt(decay)
    W = vwidth(w)
    b1v, b2v, a1v, a2v = vsplat(b1, w), vsplat(b2, w), vsplat(a1, w), vsplat(a2, w)
    lrv, epsv, ic1v, ic2v, decv = vsplat(lr_, w), vsplat(eps_, w), vsplat(ic1, w), vsplat(ic2, w), vsplat(dec, w)
    zero = vsplat(0.0, w)
    for r in range(rows):
        row = off + r * cols
        c = 0
        while c + W <= cols:
            i = row + c
            gi = vload(g, i)
            mi = b1v * vload(m, i) + a1v * gi
            vi = b2v * vload(v, i) + a2v * (gi * gi)
            wi = vload(w, i)
            if decay != 0:
                wi = wi - decv * wi
            wi = wi - lrv * (mi * ic1v) / (vsqrt(vi * ic2v) + epsv)
            vstore(m, i, mi)
            vstore(v, i, vi)
            vstore(w, i, wi)
            vstore(g, i, zero)
            if transpose:
                for lane in range(W):
                    wT[off + (c + lane) * rows + r] = vlane(wi, lane)
            c += W
        for cc in range(c, cols):
            i = row + cc
            gi = g[i]
            mi = b1 * m[i] + a1 * gi
            vi = b2 * v[i] + a2 * (gi * gi)
            m[i] = mi
            v[i] = vi
            if decay != 0:
                w[i] -= dec * w[i]
            w[i] -= lr_ * (mi * ic1) / (math.sqrt(vi * ic2) + eps_)
            g[i] = 0
            if transpose:
                wT[off + cc * rows + r] = w[i]
