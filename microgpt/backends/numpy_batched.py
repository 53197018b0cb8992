"""The `numpy_batched` backend: one sequence-wide forward and backward per batch of documents.

    tokens (B, T) --embedding--> x (B, T, C) --[attention block, MLP block] x L--> head --> losses (B, T)

Where the `numpy` backend walks a document one position at a time, this one
runs all T positions together: every linear layer is one (B*T, IN) x (IN, OUT)
BLAS call and attention is causal_attention over the whole sequence. Each layer
is a `*_forward` / `*_backward` pair; a forward returns its output and a tuple
of what its backward needs.

Batches: B documents are padded to the longest with BOS. A padded position has
a zero loss weight, so its gradient is exactly zero, and causality keeps it out
of every real position's forward; padding therefore changes nothing. The
loss of a step is the mean of the per-document losses (SPEC §2), so a document
of n positions weighs each of its losses 1 / (n * docs_per_step). A batch of
one document has no padding: it is the plain one-document path.

All parameters live in one flat array (and so do their gradients and the Adam
moments), with a named view per matrix: the update is one Adam call, and
Wq, Wk, Wv, adjacent in parameter order, are also one (3C, C) matrix, so the
three projections are one matmul.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import dropout
from ..kernels.activation import activation_backward, activation_forward
from ..kernels.adam import adam_step
from ..kernels.causal_attention import causal_attention_backward_fused, causal_attention_forward_fused
from ..kernels.matmul import matmul_backward, matmul_forward
from ..kernels.rmsnorm import rmsnorm_backward, rmsnorm_forward
from ..kernels.xent import softmax_xent_backward, softmax_xent_forward
from ..errors import MicrogptError
from ..params import num_params, param_offsets, param_shapes, param_views
from ..threads import numba_threads, one_blas_thread
from .base import Backend, mean_loss_in_batches

EVAL_TOKENS = 16384  # positions per forward when evaluating many documents


def _rows(x):
    # (..., C) -> (N, C): every leading position is one more row of one BLAS call
    return x.reshape(-1, x.shape[-1])


# -- layers ------------------------------------------------------------------------


def embedding_forward(tokens, wte, wpe, start=0):
    # tokens (B, T) int, wte (V, C), wpe (T_max, C) -> x (B, T, C); positions start .. start+T-1
    x0 = wte[tokens] + wpe[start:start + tokens.shape[1]]
    x, rstd = rmsnorm_forward(x0)  # the first rmsnorm is part of the model (SPEC §1)
    return x, (tokens, x, rstd)


def embedding_backward(dx, cache, vocab_size):
    # dx (B, T, C) -> dwte (V, C), dwpe_used (T, C) for the positions this batch used
    tokens, x, rstd = cache
    dx0 = rmsnorm_backward(dx, x, rstd)
    # the lookup wte[tokens] is onehot(tokens) @ wte, so its gradient is onehot^T @ dx0: one BLAS
    # call, where np.add.at (the same sums) is four times slower
    onehot = np.zeros((tokens.size, vocab_size), dtype=dx.dtype)
    onehot[np.arange(tokens.size), tokens.ravel()] = 1
    return onehot.T @ _rows(dx0), dx0.sum(axis=0)


def _dropped(y, mask):
    return y if mask is None else y * mask


def attention_block_forward(x, wqkv, wo, n_head, past=None, parallel=None, mask=None):
    # x (B, T, C), wqkv (3C, C) = [Wq; Wk; Wv], wo (C, C) -> y (B, T, C) = x + mask * Wo attention(rmsnorm(x))
    # past: (k, v) of the earlier positions (B, t, C) each, for decoding with a KV cache;
    # parallel: passed to the attention kernel (False when several batches run at once);
    # mask (B, T, C): dropout's multipliers on Wo's output (microgpt/dropout.py), or None
    C = x.shape[-1]
    xn, rstd = rmsnorm_forward(x)
    qkv = matmul_forward(_rows(xn), wqkv).reshape(*x.shape[:-1], 3 * C)
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]  # views, no copies
    if past is not None:
        k, v = np.concatenate([past[0], k], axis=-2), np.concatenate([past[1], v], axis=-2)
    a, att = causal_attention_forward_fused(q, k, v, n_head, parallel)
    y = x + _dropped(matmul_forward(_rows(a), wo).reshape(x.shape), mask)
    return y, (xn, rstd, q, k, v, att, a, mask)


def attention_block_backward(dy, cache, wqkv, wo, n_head, parallel=None):
    # dy (B, T, C) -> dx (B, T, C), dwqkv (3C, C), dwo (C, C)
    xn, rstd, q, k, v, att, a, mask = cache
    da, dwo = matmul_backward(_rows(_dropped(dy, mask)), _rows(a), wo)
    C = dy.shape[-1]
    dqkv = np.empty((*dy.shape[:-1], 3 * C), dtype=dy.dtype)  # the kernel writes dq, dk, dv into its columns
    causal_attention_backward_fused(da.reshape(dy.shape), q, k, v, att, n_head, parallel,
                                    out=(dqkv[..., :C], dqkv[..., C:2 * C], dqkv[..., 2 * C:]))
    dxn, dwqkv = matmul_backward(_rows(dqkv), _rows(xn), wqkv)
    dx = dy + rmsnorm_backward(dxn.reshape(dy.shape), xn, rstd)
    return dx, dwqkv, dwo


def mlp_block_forward(x, fc1, fc2, kind, mask=None):
    # x (B, T, C), fc1 (4C, C), fc2 (C, 4C) -> y (B, T, C) = x + mask * W2 act(W1 rmsnorm(x)); mask as above
    xn, rstd = rmsnorm_forward(x)
    h = matmul_forward(_rows(xn), fc1)  # (B*T, 4C)
    a = activation_forward(h, kind)
    y = x + _dropped(matmul_forward(a, fc2).reshape(x.shape), mask)
    return y, (xn, rstd, h, a, mask)


def mlp_block_backward(dy, cache, fc1, fc2, kind):
    # dy (B, T, C) -> dx (B, T, C), dfc1 (4C, C), dfc2 (C, 4C)
    xn, rstd, h, a, mask = cache
    da, dfc2 = matmul_backward(_rows(_dropped(dy, mask)), a, fc2)
    dh = activation_backward(da, h, kind)
    dxn, dfc1 = matmul_backward(dh, _rows(xn), fc1)
    dx = dy + rmsnorm_backward(dxn.reshape(dy.shape), xn, rstd)
    return dx, dfc1, dfc2


def head_forward(x, lm_head, targets):
    # x (B, T, C), lm_head (V, C), targets (B, T) int -> losses (B, T) = -log softmax(lm_head x)[target]
    logits = matmul_forward(_rows(x), lm_head)
    losses, probs = softmax_xent_forward(logits, targets.ravel())
    return losses.reshape(targets.shape), (x, probs, targets)


def head_backward(dlosses, cache, lm_head):
    # dlosses (B, T) -> dx (B, T, C), dlm_head (V, C)
    x, probs, targets = cache
    dlogits = softmax_xent_backward(dlosses.ravel(), probs, targets.ravel())
    dx, dlm_head = matmul_backward(dlogits, _rows(x), lm_head)
    return dx.reshape(x.shape), dlm_head


# -- batches -----------------------------------------------------------------------


def pad_batch(docs, block_size, pad):
    """Inputs and targets (B, T) padded with `pad` to the longest of n_b = min(T, len-1) positions, and n (B,)."""
    lengths = [min(block_size, len(d) - 1) for d in docs]
    if min(lengths) < 1:
        raise MicrogptError("a document needs at least two tokens ([BOS] + one character) to be trained on")
    T = max(lengths)
    inputs = np.full((len(docs), T), pad, dtype=np.intp)
    targets = np.full((len(docs), T), pad, dtype=np.intp)
    for b, (doc, n) in enumerate(zip(docs, lengths)):
        inputs[b, :n] = doc[:n]
        targets[b, :n] = doc[1:n + 1]
    return inputs, targets, np.array(lengths)


def loss_weights(lengths, T, docs_in_step, dtype):
    # (B, T): 1 / (n_b * docs_in_step) on a document's positions, 0 on its padding
    real = np.arange(T) < lengths[:, None]
    return np.where(real, 1.0 / (lengths[:, None] * docs_in_step), 0.0).astype(dtype)


def mean_per_document(losses, lengths):
    # losses (B, T) -> [float] * B, each document's mean over its own n_b positions, padding left out
    return [float(np.sum(row[:n])) / int(n) for row, n in zip(losses, lengths)]


# -- the backend -------------------------------------------------------------------


def split_evenly(items, parts):
    """`items` in `parts` contiguous runs whose lengths differ by at most one."""
    size, extra = divmod(len(items), parts)
    bounds = [k * size + min(k, extra) for k in range(parts + 1)]
    return [items[bounds[k]:bounds[k + 1]] for k in range(parts)]


_MALLOC_TUNED = False


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for the next step instead of returning it to the OS.

    Every step allocates and frees the same large arrays. By default glibc gives
    blocks above 128 KiB back with munmap (or trims the heap), so the next step
    page-faults all of them in again: half the step time at batch 16 on alice.
    Process-wide and once; skipped where the user set MALLOC_* variables or the C
    library is not glibc. Returns whether the settings are in place.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    _MALLOC_TUNED = bool(mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, 512 << 20)
                         and mallopt(M_TOP_PAD, 16 << 20))
    return _MALLOC_TUNED


class NumpyBatchedBackend(Backend):
    name = "numpy_batched"
    dtypes = ("float64", "float32")

    def __init__(self, cfg, vocab_size, weights, train_docs=None, threads=None):
        super().__init__(cfg, vocab_size, weights, train_docs)
        reuse_freed_memory()
        one_blas_thread()
        self.dtype = np.dtype(cfg.training.dtype)
        self.shapes = param_shapes(cfg.model, vocab_size)
        self.names = list(self.shapes)
        size = num_params(cfg.model, vocab_size)
        self.flat = np.empty(size, dtype=self.dtype)
        self.m_flat = np.zeros(size, dtype=self.dtype)
        self.v_flat = np.zeros(size, dtype=self.dtype)
        self.w = self._views(self.flat)
        for n in self.names:
            self.w[n][...] = np.asarray(weights[n], dtype=np.float64)  # one rounding, from the Python floats
        # a batch is cut into `threads` parts trained at once (numpy and BLAS release the GIL),
        # each adding into its own gradient buffer; the buffers are summed in a fixed order
        self.threads = max(1, min(threads or numba_threads(), cfg.training.batch_size))
        self.grad_flats = [np.zeros(size, dtype=self.dtype) for _ in range(self.threads)]
        self.grads = [self._views(g) for g in self.grad_flats]
        self.pool = None

    def _views(self, flat):
        """{name: (rows, cols) view of `flat`} plus layer{i}.attn_wqkv, the (3C, C) view over Wq, Wk, Wv."""
        views, starts = param_views(flat, self.shapes), param_offsets(self.shapes)
        C = self.cfg.model.n_embd
        for i in range(self.cfg.model.n_layer):
            first = starts[f"layer{i}.attn_wq"]  # Wk and Wv follow it in parameter order
            views[f"layer{i}.attn_wqkv"] = flat[first:first + 3 * C * C].reshape(3 * C, C)
        return views

    # -- the model ---------------------------------------------------------------

    def forward(self, inputs, start=0, past=None, parallel=None, masks=None):
        """Final hidden states x (B, T, C) and every layer's cache (embedding, then per layer attention, MLP).

        masks: dropout's, (B, L, SITES, T, C) (dropout.masks_array), or None."""
        m, w = self.cfg.model, self.w
        x, cache = embedding_forward(inputs, w["wte"], w["wpe"], start)
        caches = [cache]
        for i in range(m.n_layer):
            x, cache = attention_block_forward(x, w[f"layer{i}.attn_wqkv"], w[f"layer{i}.attn_wo"], m.n_head,
                                               None if past is None else past[i], parallel,
                                               None if masks is None else masks[:, i, dropout.ATTN])
            caches.append(cache)
            x, cache = mlp_block_forward(x, w[f"layer{i}.mlp_fc1"], w[f"layer{i}.mlp_fc2"], m.activation,
                                         None if masks is None else masks[:, i, dropout.MLP])
            caches.append(cache)
        return x, caches

    def backward(self, dx, caches, g, parallel=None):
        """Adds every parameter's gradient to the views `g`, from dx (B, T, C) at the last layer's output."""
        m, w = self.cfg.model, self.w
        for i in reversed(range(m.n_layer)):
            dx, dfc1, dfc2 = mlp_block_backward(dx, caches[2 + 2 * i], w[f"layer{i}.mlp_fc1"],
                                                w[f"layer{i}.mlp_fc2"], m.activation)
            g[f"layer{i}.mlp_fc1"] += dfc1
            g[f"layer{i}.mlp_fc2"] += dfc2
            dx, dwqkv, dwo = attention_block_backward(dx, caches[1 + 2 * i], w[f"layer{i}.attn_wqkv"],
                                                      w[f"layer{i}.attn_wo"], m.n_head, parallel)
            g[f"layer{i}.attn_wqkv"] += dwqkv
            g[f"layer{i}.attn_wo"] += dwo
        dwte, dwpe = embedding_backward(dx, caches[0], self.vocab_size)
        g["wte"] += dwte
        g["wpe"][:dwpe.shape[0]] += dwpe

    # A diverging run overflows somewhere before its loss stops being finite; the loss check then stops it with
    # one line, which numpy's overflow warnings would bury (a decorator: it applies in every worker thread)
    @np.errstate(over="ignore", invalid="ignore", divide="ignore")
    def train_batches(self, batches, docs_in_step, g, parallel=None, step=0, doc_ids=None):
        """Forward and backward of each batch of documents, gradients added to `g`; each document's loss.

        With dropout, doc_ids[i] are the indices within step `step` of the documents of batches[i]."""
        doc_losses = []
        m, t = self.cfg.model, self.cfg.training
        for i, docs in enumerate(batches):
            inputs, targets, lengths = pad_batch(docs, m.block_size, self.bos)
            masks = None if t.dropout == 0 else dropout.masks_array(
                t.seed, step, doc_ids[i], m.n_layer, inputs.shape[1], m.n_embd, t.dropout, self.dtype)
            x, caches = self.forward(inputs, parallel=parallel, masks=masks)
            losses, head_cache = head_forward(x, self.w["lm_head"], targets)
            doc_losses += mean_per_document(losses, lengths)
            dx, dlm_head = head_backward(loss_weights(lengths, inputs.shape[1], docs_in_step, self.dtype),
                                         head_cache, self.w["lm_head"])
            g["lm_head"] += dlm_head
            self.backward(dx, caches, g, parallel)
        return doc_losses

    def doc_losses(self, docs):
        """The loss of each document, a forward only (validation)."""
        inputs, targets, lengths = pad_batch(docs, self.cfg.model.block_size, self.bos)
        x, _ = self.forward(inputs)
        losses, _ = head_forward(x, self.w["lm_head"], targets)
        return mean_per_document(losses, lengths)

    # -- Backend -----------------------------------------------------------------

    def step(self, docs, lr, step):
        t = self.cfg.training
        B = t.batch_size
        micro = [docs[i:i + B] for i in range(0, len(docs), B)]  # grad_accum micro-batches of B documents
        ids = [list(range(i, min(i + B, len(docs)))) for i in range(0, len(docs), B)]  # for the dropout masks
        if self.threads == 1:
            self.grad_flats[0].fill(0)
            doc_losses = self.train_batches(micro, len(docs), self.grads[0], step=step, doc_ids=ids)
        else:
            # thread k trains part k of every micro-batch; each keeps to the serial kernels
            parts = [split_evenly(mb, self.threads) for mb in micro]
            id_parts = [split_evenly(mb, self.threads) for mb in ids]
            if self.pool is None:
                self.pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="microgpt-batch")

            def work(k):
                self.grad_flats[k].fill(0)
                return self.train_batches([p[k] for p in parts if p[k]], len(docs), self.grads[k], False, step,
                                          [p[k] for p in id_parts if p[k]])

            futures = [self.pool.submit(work, k) for k in range(1, self.threads)]
            per_thread = [work(0)] + [f.result() for f in futures]
            for k in range(1, self.threads):
                self.grad_flats[0] += self.grad_flats[k]
            doc_losses = []  # back in document order: micro-batch by micro-batch, part by part
            cursor = [0] * self.threads
            for mb_parts in parts:
                for k, part in enumerate(mb_parts):
                    doc_losses += per_thread[k][cursor[k]:cursor[k] + len(part)]
                    cursor[k] += len(part)
        adam_step(self.flat, self.grad_flats[0], self.m_flat, self.v_flat, lr, t.beta1, t.beta2, t.eps, step,
                  t.weight_decay)
        return sum(doc_losses) / len(doc_losses)

    def doc_loss(self, tokens):
        return self.doc_losses([tokens])[0]

    def compile(self):
        """Load (or compile) the Numba softmax kernels for this dtype: one tiny forward and backward."""
        t0 = time.perf_counter()
        scratch = self._views(np.zeros_like(self.flat))
        self.train_batches([[[self.bos, self.bos]]], 1, scratch, parallel=False)
        self.mark_compiled()
        return time.perf_counter() - t0

    @classmethod
    def compiled_variant(cls, cfg, vocab_size):
        return f"numpy_batched-{cfg.training.dtype}"

    def eval_loss(self, docs):
        # many documents per forward
        return mean_loss_in_batches(docs, self.doc_losses, max(1, EVAL_TOKENS // self.cfg.model.block_size))

    def new_cache(self):
        return {"past": None}

    def next_logits(self, cache, token, pos):
        x, caches = self.forward(np.array([[token]], dtype=np.intp), start=pos, past=cache["past"])
        cache["past"] = [(c[3], c[4]) for c in caches[1::2]]  # every attention block's keys and values so far
        return [float(z) for z in matmul_forward(x[0, 0], self.w["lm_head"])]

    def get_weights(self):
        return {n: self.w[n].tolist() for n in self.names}

    def get_adam(self):
        m, v = self._views(self.m_flat), self._views(self.v_flat)
        return {n: m[n].tolist() for n in self.names}, {n: v[n].tolist() for n in self.names}

    def set_adam(self, m, v):
        mv, vv = self._views(self.m_flat), self._views(self.v_flat)
        for n in self.names:
            mv[n][...] = np.asarray(m[n], dtype=np.float64)
            vv[n][...] = np.asarray(v[n], dtype=np.float64)
