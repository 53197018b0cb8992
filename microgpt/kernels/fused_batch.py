"""A step's documents through each layer together: one matrix product per layer for a whole group of them.

`fused_train.train_loop` runs a step's k documents one at a time, so every
weight matrix is read once per document and every weight gradient is loaded,
added to and stored back once per document. Here the documents of a step are
dealt to G groups (contiguous blocks, `fused_train.slot_docs`), and a group's
documents are laid end to end as the rows of one set of buffers, N = the sum
of their positions, no padding:

    rows (N, C) --rmsnorm--> (N, C) --x wT--> (N, 3C) --attention per document--> (N, C) --x wT--> ...

Every linear layer is then one (N, IN) x (IN, OUT) product and its weight
gradient one (OUT, N) x (N, IN) product over all N rows; only attention,
which mixes positions of one document, runs document by document (on views
of the group's rows). The products are BLAS's (`np.dot`
in compiled code calls the BLAS scipy ships), at every size.

The group count depends on k and the block size alone (`group_count`), each group is computed
by one thread into its own gradient buffer, and the groups are added in order
0..G-1: the weights do not depend on the thread count. A group holds at most
GROUP_ROWS // T documents at once (`new_batch`): a larger block (many
accumulation steps) goes through in passes of equal size, so memory stays
that of GROUP_ROWS positions per group, whatever grad_accum. The first pass
writes a matrix's gradient, the later ones add theirs to it, in order; the
embeddings' rows are sums over positions (zeroed by the first pass).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, prange

from ..dropout import SITES
from .fused_dropout import fill_masks, mul_rows
from .fused_layers import (JIT, activation_backward, activation_forward, add_rows, attention_backward,
                           attention_forward, embedding_backward, embedding_forward, rmsnorm_backward,
                           rmsnorm_forward, round_up, softmax_xent_forward, transpose_into, zero_rows)
from .fused_model import mat, offsets
from .fused_simd import VECTOR_BYTES, matrix_view, skip, take, take_all, vload, vstore, vwidth
from .fused_train import _finish_slots, adam_step, slot_docs

# positions a group holds at once: in the sweep below BLAS was at most 9 % faster on 1024 rows than
# on 256, and a step of 4 alice documents (4 x 128 positions) already makes 2 groups for 2 threads
GROUP_ROWS = 256
MAX_GROUPS = 8


def group_count(k: int, block_size: int) -> int:
    """Groups a step of k documents of up to block_size positions is split into (never a thread count)."""
    return max(1, min(MAX_GROUPS, k, k * block_size // GROUP_ROWS))


def batch_shapes(V, C, H, L, T, Tp, D, R):
    """One group's buffers, by name, and the shape of each: D documents (one pass) of at most T positions,
    R = D*T rows rounded up to whole vectors (Tp: T rounded up)."""
    return dict(
        docs=(D,),                 # document ids
        starts=(D + 1,),           # document i is rows starts[i] .. starts[i+1]-1
        targets=(R,),
        dscale=(R,),               # d step loss / d position loss; 0 past N
        emb=(R, C),
        rstd0=(R,),
        xs=(L + 1, R, C),
        xn1=(L, R, C),
        rstd1=(L, R),
        qkv=(L, R, 3 * C),
        qT=(D, L, C, Tp),          # per document: attention's own layouts
        att=(D, L, H, T, Tp),
        ao=(L, R, C),
        xmid=(L, R, C),
        xn2=(L, R, C),
        rstd2=(L, R),
        hpre=(L, R, 4 * C),
        hact=(L, R, 4 * C),
        xT=(C * R,),               # (C, Np) for this step's Np columns
        logitsT=(V * R,),          # (V, Np): logits -> probabilities -> gradient
        losses=(R,),
        tmp=(R, C),
        dx=(R, C),
        dxn=(R, C),
        dh=(R, 4 * C),
        dqkv=(R, 3 * C),
        dao=(R, C),
        daoT=(C, Tp),
        dS=(T, Tp),
        dw=(max(4 * C * C, V * C),),  # a later pass's weight gradient
        mask=(L, SITES, R, C),     # dropout's multipliers (fused_dropout.fill_masks)
    )


Batch = namedtuple("Batch", batch_shapes(V=1, C=1, H=1, L=1, T=1, Tp=1, D=1, R=1))  # the names, as for Acts
_INDEX_FIELDS = {"docs": np.int64, "starts": np.int64, "targets": np.int32}


def new_batch(model, dtype, k: int, dropout: bool = False) -> Batch:
    """Buffers for the group_count(k) groups of a step of k documents, each with a leading group axis.

    Without dropout the masks are one element (never read)."""
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    T = model.block_size
    G = group_count(k, T)
    D = min(-(-k // G), max(1, GROUP_ROWS // T))  # documents of one pass
    shapes = batch_shapes(model.vocab_size, model.n_embd, model.n_head, model.n_layer, T, round_up(T, lanes), D,
                          round_up(D * T, lanes))
    if not dropout:
        shapes["mask"] = (1,) * len(shapes["mask"])
    return Batch(**{name: np.zeros((G,) + shape, _INDEX_FIELDS.get(name, dtype)) for name, shape in shapes.items()})


@njit(**JIT)
def group(batch, j):
    """Group j's buffers (every buffer has the groups along its first axis)."""
    return take_all(batch, j)


# -- products --------------------------------------------------------------------------------
#
# All BLAS's (np.dot): in a one-thread sweep sgemm and dgemm ran 1.3-3.5x the register kernel
# (fused_layers.matmul_rows) from (16, 16) x (16, 64) to (1024, 256) x (256, 1024), and tied at
# (16, 16) x (16, 16) (docs/fused.md, "Batches"); with the kernel kept beside them for the small
# products the batch loop took 36 s to compile instead of 20 (cold cache, load 2-3).


@njit(**JIT)
def linear_forward(y, x, wT, n):
    """y[:n] = x[:n] @ wT.  x (n, IN), wT (IN, OUT), y (n, OUT)."""
    np.dot(x[:n], wT, y[:n])


@njit(**JIT)
def weight_grad(dw, dyT, x, scratch, accumulate):
    """dw (+)= dyT @ x.  dw (OUT, IN), dyT (OUT, n), x (n, IN); scratch holds the product when adding."""
    if accumulate:
        product = matrix_view(scratch, 0, dw.shape[0], dw.shape[1])
        np.dot(dyT, x, product)  # BLAS only writes its result
        dw += product
    else:
        np.dot(dyT, x, dw)


@njit(**JIT)
def linear_backward(dx, dw, dy, x, w, n, scratch, accumulate):
    """dx[:n] = dy[:n] @ w;  dw (+)= dy[:n]^T @ x[:n].  w, dw (OUT, IN), dy (n, OUT)."""
    np.dot(dy[:n], w, dx[:n])
    weight_grad(dw, dy[:n].T, x[:n], scratch, accumulate)


@njit(**JIT)
def head_backward(dx, dw, dlogitsT, x, w, scratch, accumulate):
    """dx[:Np] = dlogitsT^T @ w;  dw (+)= dlogitsT @ x[:Np].  dlogitsT (V, Np), zero in columns n..Np-1.

    All Np columns, whole vectors: x's rows past n are zero (group_forward), dlogitsT's columns too.
    """
    Np = dlogitsT.shape[1]
    np.dot(dlogitsT.T, w, dx[:Np])
    weight_grad(dw, dlogitsT, x[:Np], scratch, accumulate)


@njit(**JIT)
def xent_backward_scaled(probsT, targets, dscale, n, V):
    """In place: probsT[:, t] = (probs - onehot(target)) * dscale[t] for t < n; columns up to a whole vector get 0."""
    W = vwidth(probsT)
    end = round_up(n, W)
    for c in range(V):
        row = take(probsT, c)
        for tb in range(0, end, W):
            vstore(row, tb, vload(row, tb) * vload(dscale, tb))
    for t in range(n):
        probsT[targets[t], t] -= dscale[t]


# -- one group of documents ------------------------------------------------------------------


@njit(**JIT)
def gather(b, tokens, offsets_, first, lo, hi, T, k):
    """The group's documents (step documents lo..hi-1 from `first`) laid end to end; their number of rows N."""
    n_docs = offsets_.shape[0] - 1
    r = 0
    for i in range(hi - lo):
        d = (first + lo + i) % n_docs
        n = min(T, offsets_[d + 1] - offsets_[d] - 1)
        tok = skip(tokens, offsets_[d])
        scale = b.dscale.dtype.type((1.0 / n) * (1.0 / k))  # fused_train._train_doc's scale, the same rounding
        b.docs[i] = d
        b.starts[i] = r
        for t in range(n):
            b.targets[r + t] = tok[t + 1]
            b.dscale[r + t] = scale
        r += n
    b.starts[hi - lo] = r
    for t in range(r, round_up(r, vwidth(b.dscale))):
        b.dscale[t] = 0
    return r


@njit(**JIT)
def group_forward(w, wT, model, b, tokens, offsets_, n_in, N, drop):
    """The forward pass of the group's n_in documents (N rows); per-position losses in b.losses[:N].

    drop: multiply each block's output by b.mask (dropout) before its residual add."""
    V, C, H, L, T = model.vocab_size, model.n_embd, model.n_head, model.n_layer, model.block_size
    shared = offsets(model, 0)  # wte, wpe and lm_head: the same for every layer
    wte, wpe = mat(w, shared.wte, V, C), mat(w, shared.wpe, T, C)
    for i in range(n_in):
        r0 = b.starts[i]
        embedding_forward(skip(b.emb, r0), skip(tokens, offsets_[b.docs[i]]), wte, wpe, b.starts[i + 1] - r0)
    rmsnorm_forward(take(b.xs, 0), b.rstd0, b.emb, N)
    for li in range(L):
        layer = offsets(model, li)
        x, xmid, qkv, ao, hpre, hact = (take(b.xs, li), take(b.xmid, li), take(b.qkv, li), take(b.ao, li),
                                        take(b.hpre, li), take(b.hact, li))
        rmsnorm_forward(take(b.xn1, li), take(b.rstd1, li), x, N)
        linear_forward(qkv, take(b.xn1, li), mat(wT, layer.qkv, C, 3 * C), N)
        for i in range(n_in):
            r0 = b.starts[i]
            attention_forward(skip(ao, r0), take(take(b.att, i), li), take(take(b.qT, i), li), skip(qkv, r0),
                              0, b.starts[i + 1] - r0, H, model.attn_scale)
        linear_forward(b.tmp, ao, mat(wT, layer.wo, C, C), N)
        if drop:
            mul_rows(b.tmp, b.tmp, b.mask[li, 0], N)
        add_rows(xmid, b.tmp, x, N)
        rmsnorm_forward(take(b.xn2, li), take(b.rstd2, li), xmid, N)
        linear_forward(hpre, take(b.xn2, li), mat(wT, layer.fc1, C, 4 * C), N)
        activation_forward(hact, hpre, N, model.activation)
        linear_forward(b.tmp, hact, mat(wT, layer.fc2, 4 * C, C), N)
        if drop:
            mul_rows(b.tmp, b.tmp, b.mask[li, 1], N)
        add_rows(take(b.xs, li + 1), b.tmp, xmid, N)
    Np = round_up(N, vwidth(b.losses))
    xT, logitsT = matrix_view(b.xT, 0, C, Np), matrix_view(b.logitsT, 0, V, Np)
    transpose_into(xT, take(b.xs, L), 0, 0, N)
    zero_rows(skip(take(b.xs, L), N), Np - N)  # head_backward's BLAS reads them: 0, not an old step's rows
    np.dot(mat(w, shared.lm_head, V, C), xT, logitsT)  # (V, Np): positions along the rows, in the lanes
    softmax_xent_forward(b.losses, logitsT, b.targets, 0, N, V)


@njit(**JIT)
def group_backward(w, g, model, b, tokens, offsets_, n_in, N, accumulate, drop):
    """d(sum of dscale * position loss)/d(weights) into g, added where `accumulate`; needs group_forward's buffers."""
    V, C, H, L, T = model.vocab_size, model.n_embd, model.n_head, model.n_layer, model.block_size
    shared = offsets(model, 0)  # wte, wpe and lm_head: the same for every layer
    logitsT = matrix_view(b.logitsT, 0, V, round_up(N, vwidth(b.losses)))
    xent_backward_scaled(logitsT, b.targets, b.dscale, N, V)
    head_backward(b.dx, mat(g, shared.lm_head, V, C), logitsT, take(b.xs, L), mat(w, shared.lm_head, V, C), b.dw,
                  accumulate)
    for li in range(L - 1, -1, -1):
        layer = offsets(model, li)
        qkv = take(b.qkv, li)
        # MLP: x_out = mask * fc2(act(fc1(rmsnorm(xmid)))) + xmid, b.dx = d x_out
        dy = b.dx
        if drop:
            mul_rows(b.tmp, b.dx, b.mask[li, 1], N)
            dy = b.tmp
        linear_backward(b.dh, mat(g, layer.fc2, C, 4 * C), dy, take(b.hact, li), mat(w, layer.fc2, C, 4 * C), N,
                        b.dw, accumulate)
        activation_backward(b.dh, b.dh, take(b.hpre, li), N, model.activation)
        linear_backward(b.dxn, mat(g, layer.fc1, 4 * C, C), b.dh, take(b.xn2, li), mat(w, layer.fc1, 4 * C, C), N,
                        b.dw, accumulate)
        rmsnorm_backward(b.dx, b.dxn, take(b.xn2, li), take(b.rstd2, li), N)  # b.dx is now d xmid
        # attention: xmid = mask * wo(attention(rmsnorm(x))) + x
        dy = b.dx
        if drop:
            mul_rows(b.tmp, b.dx, b.mask[li, 0], N)
            dy = b.tmp
        linear_backward(b.dao, mat(g, layer.wo, C, C), dy, take(b.ao, li), mat(w, layer.wo, C, C), N,
                        b.dw, accumulate)
        for i in range(n_in):
            r0 = b.starts[i]
            attention_backward(skip(b.dqkv, r0), b.dS, b.daoT, skip(b.dao, r0), take(take(b.att, i), li),
                               take(take(b.qT, i), li), skip(qkv, r0), b.starts[i + 1] - r0, H, model.attn_scale)
        linear_backward(b.dxn, mat(g, layer.qkv, 3 * C, C), b.dqkv, take(b.xn1, li), mat(w, layer.qkv, 3 * C, C), N,
                        b.dw, accumulate)
        rmsnorm_backward(b.dx, b.dxn, take(b.xn1, li), take(b.rstd1, li), N)  # b.dx: d x entering the layer
    zero_rows(b.dxn, N)
    rmsnorm_backward(b.dxn, b.dx, take(b.xs, 0), b.rstd0, N)
    if not accumulate:
        g[shared.wte:shared.lm_head] = 0  # wte and wpe, adjacent: sums over positions, added to row by row
    dwte, dwpe = mat(g, shared.wte, V, C), mat(g, shared.wpe, T, C)
    for i in range(n_in):
        r0 = b.starts[i]
        embedding_backward(dwte, dwpe, skip(b.dxn, r0), skip(tokens, offsets_[b.docs[i]]), b.starts[i + 1] - r0)


@njit(**JIT)
def train_group(j, w, wT, grads, batch, model, hyper, tokens, offsets_, first, k, doc_losses):
    """Group j's documents of the step whose first document is `first`: gradient into grads[j], losses."""
    G = grads.shape[0]
    b = group(batch, j)
    lo, hi = slot_docs(j, G, k)
    passes = -(-(hi - lo) // b.docs.shape[0])
    zero = b.losses.dtype.type(0)
    drop = hyper.dropout_threshold > 0
    for p in range(passes):
        p0, p1 = slot_docs(p, passes, hi - lo)  # equal passes, none over the buffers' documents
        p0, p1 = lo + p0, lo + p1
        N = gather(b, tokens, offsets_, first, p0, p1, model.block_size, k)
        if drop:  # step first // k, its documents p0 .. p1 - 1
            fill_masks(b.mask, b.starts, p1 - p0, p0, first // k, hyper)
        group_forward(w, wT, model, b, tokens, offsets_, p1 - p0, N, drop)
        for i in range(p1 - p0):
            total = zero
            for t in range(b.starts[i], b.starts[i + 1]):
                total += b.losses[t]
            doc_losses[p0 + i] = b.losses.dtype.type(1.0 / (b.starts[i + 1] - b.starts[i])) * total
        group_backward(w, take(grads, j), model, b, tokens, offsets_, p1 - p0, N, p > 0, drop)


@njit(**JIT)
def _mean(x):
    total = 0.0
    for i in range(x.shape[0]):
        total += x[i]
    return total * (1.0 / x.shape[0])


@njit(**JIT)
def batch_loop(w, wT, m, v, grad, group_grads, batch, tokens, offsets_, model, hyper, start, count, k,
               doc_losses, losses):
    """Steps start .. start+count-1, groups one after the other; losses[i] = the loss of step start+i.

    With one group its gradient is written straight into `grad`; group_grads
    (G, P) is used when G > 1. hyper as in fused_train.train_loop.
    """
    G = batch.docs.shape[0]
    grads = matrix_view(grad, 0, 1, grad.shape[0]) if G == 1 else group_grads
    for i in range(count):
        s = start + i
        for j in range(G):
            train_group(j, w, wT, grads, batch, model, hyper, tokens, offsets_, s * k, k, doc_losses)
        losses[i] = _mean(doc_losses) if G == 1 else _finish_slots(grad, group_grads, doc_losses)
        adam_step(w, wT, m, v, grad, model, hyper, s)


@njit(parallel=True, **JIT)
def batch_loop_threads(w, wT, m, v, grad, group_grads, batch, tokens, offsets_, model, hyper, start, count, k,
                       doc_losses, losses):
    """`batch_loop` for G > 1 with the groups spread over threads: the same arithmetic, so the same numbers."""
    for i in range(count):
        s = start + i
        for j in prange(group_grads.shape[0]):
            train_group(j, w, wT, group_grads, batch, model, hyper, tokens, offsets_, s * k, k, doc_losses)
        losses[i] = _finish_slots(grad, group_grads, doc_losses)
        adam_step(w, wT, m, v, grad, model, hyper, s)
