"""The GPT of SPEC §1 for one document, forward and backward, compiled, over preallocated buffers.

    tokens -> embedding -> rmsnorm -> L x [rmsnorm -> qkv -> attention -> wo (+ residual)
                                          -> rmsnorm -> fc1 -> act -> fc2 (+ residual)] -> lm_head -> softmax/xent

Parameters live in one flat vector `w` in `params.param_shapes` order, each
matrix row-major [out][in] (the checkpoint's layout), so Adam is one loop and
`layer{i}.attn_wq/wk/wv`, being adjacent, form one (3C, C) matrix. `wT` holds
the transpose of every matrix at the same offset (the forward pass's layout).

`model` is a `Model` (the sizes, the activation and the attention scale).
A document's activations go to an `Acts` of buffers sized for T positions;
`new_acts` allocates `slots` of them at once (one per document computed in
parallel) and `slot(acts, j)` picks one inside compiled code.
"""

from __future__ import annotations

from collections import namedtuple
from typing import NamedTuple

import numpy as np
from numba import njit

from .fused_layers import (JIT, activation_backward, activation_forward, add_rows, attention_backward,
                           attention_forward, embedding_backward, embedding_forward, matmul_backward,
                           matmul_forward, matmul_rows, rmsnorm_backward, rmsnorm_forward, round_up,
                           softmax_xent_backward, softmax_xent_forward, transpose_into, zero_rows)
from .fused_simd import VECTOR_BYTES, matrix_view, skip, take, take_all, transposed, vwidth


class Model(NamedTuple):
    """What the compiled code needs to know of the model besides its weights."""
    vocab_size: int
    n_embd: int
    n_head: int
    n_layer: int
    block_size: int
    activation: int  # fused_layers.RELU or RELU2
    attn_scale: float  # head_dim ** -0.5, computed in Python as the reference does


def act_shapes(V, C, H, L, T, Tp):
    """One document's buffers, by name, and the shape of each (Tp: T rounded up to whole vectors)."""
    return dict(
        # forward, kept for the backward pass
        emb=(T, C),            # wte[tok] + wpe[pos]
        rstd0=(T,),
        xs=(L + 1, T, C),      # residual stream entering each layer, and leaving the last
        xn1=(L, T, C),
        rstd1=(L, T),
        qkv=(L, T, 3 * C),     # [q | k | v]; k, v are the KV cache when sampling
        qT=(L, C, Tp),         # queries, transposed
        att=(L, H, T, Tp),     # att[l, h, s, t]: probability of query t on key s
        ao=(L, T, C),          # attention output, heads concatenated
        xmid=(L, T, C),        # residual stream between attention and MLP
        xn2=(L, T, C),
        rstd2=(L, T),
        hpre=(L, T, 4 * C),
        hact=(L, T, 4 * C),
        xT=(C, Tp),            # the last residual stream, transposed
        logitsT=(V, Tp),       # logits -> probabilities -> their gradient, in place
        losses=(T,),
        # scratch
        tmp=(T, C),
        dx=(T, C),             # gradient of the residual stream
        dxn=(T, C),
        dh=(T, 4 * C),
        dqkv=(T, 3 * C),
        dao=(T, C),
        daoT=(C, Tp),
        dS=(T, Tp),            # d attention scores, one head at a time
    )


Acts = namedtuple("Acts", act_shapes(V=1, C=1, H=1, L=1, T=1, Tp=1))  # the names; any sizes give the same


def new_acts(model: Model, dtype, slots: int) -> Acts:
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    T = model.block_size
    shapes = act_shapes(model.vocab_size, model.n_embd, model.n_head, model.n_layer, T, round_up(T, lanes))
    return Acts(**{name: np.zeros((slots,) + shape, dtype) for name, shape in shapes.items()})


@njit(**JIT)
def slot(acts, j):
    """Slot j's buffers (every buffer has the slots along its first axis)."""
    return take_all(acts, j)


# -- where each parameter lives in the flat vector (params.param_shapes order) ----------------


class Offsets(NamedTuple):
    """Where each matrix of the embeddings, the head and one layer starts in the flat vector."""
    wte: int
    wpe: int
    lm_head: int
    qkv: int  # the layer's [wq | wk | wv], adjacent: one (3C, C) matrix
    wo: int
    fc1: int
    fc2: int


@njit(**JIT)
def num_params(model):
    V, C, L, T = model.vocab_size, model.n_embd, model.n_layer, model.block_size
    return 2 * V * C + T * C + 12 * L * C * C


@njit(**JIT)
def offsets(model, layer):
    V, C, T = model.vocab_size, model.n_embd, model.block_size
    base = 2 * V * C + T * C + layer * 12 * C * C
    return Offsets(0, V * C, V * C + T * C, base, base + 3 * C * C, base + 4 * C * C, base + 8 * C * C)


mat = matrix_view


# -- one document ------------------------------------------------------------------------------


@njit(**JIT)
def doc_forward(w, wT, model, a, tok, t0, n, with_loss):
    """Positions t0..n-1 of the document `tok` (inputs tok[:n], targets tok[1:n+1]).

    t0 = 0 for a whole document; t0 > 0 continues from positions < t0 already
    in the buffers (sampling, one position at a time: a.qkv holds the keys and
    values). With `with_loss`, returns the document's loss (1/n) * the sum of
    its n position losses; otherwise the logits are left in a.logitsT[:, t0:n].
    """
    V, C, H, L, T = model.vocab_size, model.n_embd, model.n_head, model.n_layer, model.block_size
    m = n - t0
    shared = offsets(model, 0)  # wte, wpe and lm_head: the same for every layer
    wte, wpe = mat(w, shared.wte, V, C), mat(w, shared.wpe, T, C)
    embedding_forward(skip(a.emb, t0), skip(tok, t0), wte, skip(wpe, t0), m)
    rmsnorm_forward(skip(take(a.xs, 0), t0), skip(a.rstd0, t0), skip(a.emb, t0), m)
    for li in range(L):
        layer = offsets(model, li)
        x, xmid, tmp = skip(take(a.xs, li), t0), skip(take(a.xmid, li), t0), skip(a.tmp, t0)
        xn1, qkv, ao = skip(take(a.xn1, li), t0), take(a.qkv, li), take(a.ao, li)
        xn2, hpre, hact = skip(take(a.xn2, li), t0), skip(take(a.hpre, li), t0), skip(take(a.hact, li), t0)
        rmsnorm_forward(xn1, skip(take(a.rstd1, li), t0), x, m)
        matmul_forward(skip(qkv, t0), xn1, mat(wT, layer.qkv, C, 3 * C), m)
        attention_forward(ao, take(a.att, li), take(a.qT, li), qkv, t0, n, H, model.attn_scale)
        matmul_forward(tmp, skip(ao, t0), mat(wT, layer.wo, C, C), m)
        add_rows(xmid, tmp, x, m)
        rmsnorm_forward(xn2, skip(take(a.rstd2, li), t0), xmid, m)
        matmul_forward(hpre, xn2, mat(wT, layer.fc1, C, 4 * C), m)
        activation_forward(hact, hpre, m, model.activation)
        matmul_forward(tmp, hact, mat(wT, layer.fc2, 4 * C, C), m)
        add_rows(skip(take(a.xs, li + 1), t0), tmp, xmid, m)
    # logits transposed (V, positions): the softmax then runs down the vocabulary with positions in the lanes
    W = vwidth(a.xT)
    tb = t0 - t0 % W
    transpose_into(a.xT, take(a.xs, L), 0, t0, n)
    matmul_rows(a.logitsT, mat(w, shared.lm_head, V, C), a.xT, V, C, tb, round_up(n, W) - tb, False)
    zero = a.losses.dtype.type(0)  # not a.losses[0] * 0: float32 times an int is float64 in Numba
    if not with_loss:
        return zero
    softmax_xent_forward(a.losses, a.logitsT, skip(tok, 1), t0, n, V)
    total = zero
    for t in range(n):
        total += a.losses[t]
    return a.losses.dtype.type(1.0 / n) * total


@njit(**JIT)
def doc_backward(w, g, model, a, tok, n, dscale):
    """Adds d(dscale * sum of the n position losses)/d(weights) to the flat gradient g.

    Needs the buffers of `doc_forward(..., t0=0, n, with_loss=True)` on the same document.
    """
    V, C, H, L, T = model.vocab_size, model.n_embd, model.n_head, model.n_layer, model.block_size
    shared = offsets(model, 0)  # wte, wpe and lm_head: the same for every layer
    softmax_xent_backward(a.logitsT, skip(tok, 1), n, V, dscale)
    matmul_backward(a.dx, mat(g, shared.lm_head, V, C), transposed(a.logitsT), take(a.xs, L),
                    mat(w, shared.lm_head, V, C), n, False)
    for li in range(L - 1, -1, -1):
        layer = offsets(model, li)
        # MLP: x_out = fc2(act(fc1(rmsnorm(xmid)))) + xmid, a.dx = d x_out
        matmul_backward(a.dh, mat(g, layer.fc2, C, 4 * C), a.dx, take(a.hact, li), mat(w, layer.fc2, C, 4 * C),
                        n, False)
        activation_backward(a.dh, a.dh, take(a.hpre, li), n, model.activation)
        matmul_backward(a.dxn, mat(g, layer.fc1, 4 * C, C), a.dh, take(a.xn2, li), mat(w, layer.fc1, 4 * C, C),
                        n, False)
        rmsnorm_backward(a.dx, a.dxn, take(a.xn2, li), take(a.rstd2, li), n)  # a.dx is now d xmid
        # attention: xmid = wo(attention(rmsnorm(x))) + x
        matmul_backward(a.dao, mat(g, layer.wo, C, C), a.dx, take(a.ao, li), mat(w, layer.wo, C, C), n, False)
        attention_backward(a.dqkv, a.dS, a.daoT, a.dao, take(a.att, li), take(a.qT, li), take(a.qkv, li),
                           n, H, model.attn_scale)
        matmul_backward(a.dxn, mat(g, layer.qkv, 3 * C, C), a.dqkv, take(a.xn1, li), mat(w, layer.qkv, 3 * C, C),
                        n, False)
        rmsnorm_backward(a.dx, a.dxn, take(a.xn1, li), take(a.rstd1, li), n)  # a.dx: d x entering the layer
    zero_rows(a.dxn, n)
    rmsnorm_backward(a.dxn, a.dx, take(a.xs, 0), a.rstd0, n)
    embedding_backward(mat(g, shared.wte, V, C), mat(g, shared.wpe, T, C), a.dxn, tok, n)
