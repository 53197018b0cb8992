"""Many optimizer steps in one compiled call: documents, forward, backward, Adam, repeat.

Nothing here touches a Python object: the training documents are one packed
int32 array `tokens` with `offsets` (document d is tokens[offsets[d]:offsets[d+1]]),
every buffer is allocated by the caller, and the per-step losses are written
to `losses`.

Step s trains on documents (s*k + j) % n_docs, j < k (SPEC §2,
`schedule.step_doc_indices`), k = batch_size * grad_accum. Its loss is the
mean of the k document losses and its gradient the gradient of that mean.
`train_loop` here takes one document a step (k = 1), its gradient straight
into `grad`; k > 1 runs on fused_batch, which deals a step's documents to
groups with `slot_docs` and adds the groups' gradients with `_finish_slots`.
Contiguous blocks, not `j % S`: a prange hands each thread a contiguous run of
groups, and with round-robin dealing the extra documents of a k that is not a
multiple of S all sit in the first ones (k = 12 on 2 threads: 8 documents
against 4); block sizes differ by at most one and are spread over the groups
(k = 12, S = 8: 1, 2, 1, 2, ...), so each thread's run holds its share (6 and 6).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from numba import njit

from .fused_layers import JIT, adam_update
from .fused_model import doc_backward, doc_forward, mat, offsets, slot
from .fused_simd import skip, take

LINEAR, COSINE, CONSTANT = 0, 1, 2
SCHEDULES = {"linear": LINEAR, "cosine": COSINE, "constant": CONSTANT}


class Hyper(NamedTuple):
    """The training settings compiled code reads: Adam's, the learning-rate schedule's, dropout's."""
    learning_rate: float  # at step 0; the schedule scales it
    beta1: float
    beta2: float
    eps: float
    schedule: int  # LINEAR, COSINE or CONSTANT
    num_steps: int  # the schedule's horizon
    weight_decay: float  # AdamW's decoupled decay; 0 is SPEC's Adam
    seed: int  # the scenario's, for the dropout masks (fused_dropout.py)
    dropout_threshold: int  # dropout.threshold(p): 0 drops nothing, and the masks are not computed
    dropout_scale: float  # dropout.scale(p)


@njit(**JIT)
def learning_rate(step, lr, schedule, num_steps):
    """schedule.learning_rate, with the same operations in the same order."""
    if schedule == LINEAR:
        return lr * (1 - step / num_steps)
    if schedule == COSINE:
        return lr * 0.5 * (1 + math.cos(math.pi * step / num_steps))
    return lr


@njit(**JIT)
def _transpose_block(wT, w, off, rows, cols):
    src, dst = mat(w, off, rows, cols), mat(wT, off, cols, rows)
    for r in range(rows):
        for c in range(cols):
            dst[c, r] = src[r, c]


@njit(**JIT)
def refresh_transposed(w, wT, model):
    """wT = the transpose of every matrix the forward pass multiplies by on the right (adam_step keeps it so)."""
    C = model.n_embd
    for li in range(model.n_layer):
        layer = offsets(model, li)
        _transpose_block(wT, w, layer.qkv, 3 * C, C)
        _transpose_block(wT, w, layer.wo, C, C)
        _transpose_block(wT, w, layer.fc1, 4 * C, C)
        _transpose_block(wT, w, layer.fc2, C, 4 * C)


@njit(**JIT)
def _doc_tokens(tokens, offsets_, d, T):
    """Document d's tokens (a view from its first token on) and its number of positions."""
    return skip(tokens, offsets_[d]), min(T, offsets_[d + 1] - offsets_[d] - 1)


@njit(**JIT)
def _train_doc(w, wT, g, model, a, tokens, offsets_, d, k):
    """Forward and backward of document d, its gradient scaled by 1/k added to g; its loss."""
    tok, n = _doc_tokens(tokens, offsets_, d, model.block_size)
    loss = doc_forward(w, wT, model, a, tok, 0, n, True)
    doc_backward(w, g, model, a, tok, n, a.losses.dtype.type((1.0 / n) * (1.0 / k)))
    return loss


@njit(**JIT)
def slot_docs(j, S, k):
    """The documents (indices within the step) slot j of S takes: lo .. hi - 1, a contiguous block."""
    return j * k // S, (j + 1) * k // S


@njit(**JIT)
def _finish_slots(grad, slot_grads, doc_losses):
    """grad = the slots' gradients added in order; the step's loss = the mean document loss."""
    grad[:] = take(slot_grads, 0)
    for j in range(1, slot_grads.shape[0]):
        grad += take(slot_grads, j)
    total = 0.0
    for i in range(doc_losses.shape[0]):
        total += doc_losses[i]
    return total * (1.0 / doc_losses.shape[0])


@njit(**JIT)
def adam_step(w, wT, m, v, grad, model, hyper, s):
    """Adam on every parameter (step s), refreshing the transposed copies the forward pass reads."""
    b1, b2, eps = hyper.beta1, hyper.beta2, hyper.eps
    lr = learning_rate(s, hyper.learning_rate, hyper.schedule, hyper.num_steps)
    decay = lr * hyper.weight_decay  # AdamW's, from the weight before the update
    c1, c2 = 1.0 - b1 ** float(s + 1), 1.0 - b2 ** float(s + 1)  # float exponents: C pow(), like Python's
    V, C, T = model.vocab_size, model.n_embd, model.block_size
    shared = offsets(model, 0)  # wte, wpe and lm_head: the same for every layer
    adam_update(w, wT, grad, m, v, shared.wte, V, C, False, lr, b1, b2, eps, c1, c2, decay)
    adam_update(w, wT, grad, m, v, shared.wpe, T, C, False, lr, b1, b2, eps, c1, c2, decay)
    adam_update(w, wT, grad, m, v, shared.lm_head, V, C, False, lr, b1, b2, eps, c1, c2, decay)
    for li in range(model.n_layer):
        layer = offsets(model, li)
        adam_update(w, wT, grad, m, v, layer.qkv, 3 * C, C, True, lr, b1, b2, eps, c1, c2, decay)
        adam_update(w, wT, grad, m, v, layer.wo, C, C, True, lr, b1, b2, eps, c1, c2, decay)
        adam_update(w, wT, grad, m, v, layer.fc1, 4 * C, C, True, lr, b1, b2, eps, c1, c2, decay)
        adam_update(w, wT, grad, m, v, layer.fc2, C, 4 * C, True, lr, b1, b2, eps, c1, c2, decay)


@njit(**JIT)
def train_loop(w, wT, m, v, grad, slot_grads, acts, tokens, offsets_, model, hyper, start, count, k,
               doc_losses, losses):
    """Steps start .. start+count-1, one document each, on one thread; losses[i] = the loss of step start+i.

    k must be 1 (the backend runs k > 1 on fused_batch); slot_grads, k and doc_losses are there so that
    the backend calls this loop and fused_batch's with the same arguments. model is a fused_model.Model,
    hyper a Hyper. On entry `grad` must be zero (Adam leaves it so).
    """
    n_docs = offsets_.shape[0] - 1
    a = slot(acts, 0)
    for i in range(count):
        s = start + i
        losses[i] = _train_doc(w, wT, grad, model, a, tokens, offsets_, s % n_docs, 1)
        adam_step(w, wT, m, v, grad, model, hyper, s)


@njit(**JIT)
def eval_docs(w, wT, model, acts, tokens, offsets_, out):
    """out[d] = the loss of document d, no gradient."""
    a = slot(acts, 0)
    for d in range(offsets_.shape[0] - 1):
        tok, n = _doc_tokens(tokens, offsets_, d, model.block_size)
        out[d] = doc_forward(w, wT, model, a, tok, 0, n, True)


@njit(**JIT)
def forward_at(w, wT, model, acts, tok, pos, logits):
    """logits[:V] for the token tok[pos] at position pos, positions < pos being in acts' KV cache."""
    a = slot(acts, 0)
    doc_forward(w, wT, model, a, tok, pos, pos + 1, False)
    for c in range(logits.shape[0]):
        logits[c] = a.logitsT[c, pos]
