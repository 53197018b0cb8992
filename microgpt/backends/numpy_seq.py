"""The `numpy` backend: the python backend's per-position algorithm, on arrays.

A document is run one position at a time, exactly as the python backend does:
each position appends its keys and values to the KV cache of every layer and
attends over positions 0..pos. What changes is the unit of work: instead of a
graph of scalar `Value`s, one compiled call runs a whole position through
every layer, and the backward pass is written by hand:

    forward:  for pos in 0..n-1:   position_forward(pos)   -> loss of pos
    backward: for pos in n-1..0:   position_backward(pos)

Going backwards through the positions is what makes the KV cache's gradient
simple: by the time position p is reached, every later query has added its
share to dK[p] and dV[p], so they are complete and can flow into Wk, Wv and
the residual stream of p.

Both position functions are Numba-compiled compositions of the per-position
kernels (`microgpt/kernels/*_into`), each of which is tested alone against the
plain-numpy kernels. A Python-level loop over ~100 small numpy calls per
position costs ~1 us per call, more than the arithmetic; one compiled call per
position keeps the per-position structure and removes that overhead.

All parameters live in one flat array (`theta`, param_shapes order), with a
2-D view per name; gradients and Adam moments are flat arrays of the same
layout, so the Adam update is one kernel call over everything.
"""

from __future__ import annotations

import math
import sys

import numba
import numpy as np
from numba import njit

from .. import dropout, envvars
from ..config import Config
from ..kernels.activation import CODES, activation_backward_into, activation_forward_into
from ..kernels.adam import adam_step_fused
from ..kernels import attention as attn
from ..kernels.matmul import matvec_backward_into, matvec_forward_into
from ..kernels.rmsnorm import rmsnorm_backward_into, rmsnorm_forward_into
from ..kernels.xent import softmax_xent_backward_into, softmax_xent_forward_into
from ..params import param_shapes
from ..threads import default_threading_layer, numba_threads
from .base import Backend, Matrix

# index of each parameter in param_shapes order: wte, wpe, lm_head, then 6 per layer
WTE, WPE, LM_HEAD = 0, 1, 2
WQ, WK, WV, WO, FC1, FC2 = range(6)


@njit(cache=True)
def _weight(theta, ofs, index, rows, cols):
    # the (rows, cols) view of parameter `index` inside the flat parameter array
    return theta[ofs[index]:ofs[index + 1]].reshape((rows, cols))


@njit(cache=True)
def _layer_weight(theta, ofs, layer, which, rows, cols):
    return _weight(theta, ofs, 3 + 6 * layer + which, rows, cols)


class Activations:
    """Everything the forward pass of one document keeps for the backward; sized for T positions.

    Also the KV cache (`k`, `v`, every layer) and the gradient scratch of one position.
    The compiled functions take them as one tuple, `bufs`, in BUFFERS order.
    """

    def __init__(self, n_layer: int, n_embd: int, n_head: int, block_size: int, vocab_size: int, dtype,
                 dropout_masks: bool = False):
        L, C, H, T, V = n_layer, n_embd, n_head, block_size, vocab_size
        z = lambda *shape: np.zeros(shape, dtype=dtype)  # noqa: E731
        self.x = z(L + 1, T, C)       # residual stream entering layer l; x[0] = rmsnorm(wte + wpe), x[L] -> lm_head
        self.rstd0 = z(T)             # of the first rmsnorm
        self.xn1 = z(L, T, C)         # rmsnorm(x[l]), the attention input
        self.rstd1 = z(L, T)
        self.q = z(L, T, C)
        self.k = z(L, T, C)           # KV cache
        self.v = z(L, T, C)
        self.att = z(L, T, H, T)      # att[l, pos, h, :pos+1]
        self.ao = z(L, T, C)          # concatenated head outputs, the input of Wo
        self.xmid = z(L, T, C)        # residual stream after attention
        self.xn2 = z(L, T, C)         # rmsnorm(xmid), the MLP input
        self.rstd2 = z(L, T)
        self.hpre = z(L, T, 4 * C)    # fc1 output, before the activation
        self.hact = z(L, T, 4 * C)
        self.logits = z(T, V)
        self.probs = z(T, V)
        self.dk = z(L, T, C)          # gradients of the KV cache, filled by later positions first
        self.dv = z(L, T, C)
        self.dx = z(C)                # d loss / d residual stream of the position being walked back
        self.dao = z(C)               # d loss / d attention output
        self.dq = z(C)
        # dropout's multipliers on Wo's and fc2's outputs (microgpt/dropout.py); no rows (nothing multiplied)
        # in buffers that validate, sample or train without dropout
        self.mask = np.zeros((L if dropout_masks else 0, dropout.SITES, T, C), dtype=dtype)
        self.bufs = tuple(getattr(self, name) for name in BUFFERS)


BUFFERS = ("x", "rstd0", "xn1", "rstd1", "q", "k", "v", "att", "ao", "xmid", "xn2", "rstd2", "hpre", "hact",
           "logits", "probs", "dk", "dv", "dx", "dao", "dq", "mask")

# -- forward, one position: embed, then per layer (attention input | attention | rest), then logits --
# position_forward runs them all in one compiled call; the pieces exist on their own so that
# a parallel attention kernel can be called between them from Python (a cached compiled
# function must not call a parallel one: numba/numba#8578, a segfault on loading the cache).


@njit(cache=True)
def embed_forward(theta, ofs, tok, pos, bufs):
    x, rstd0 = bufs[0], bufs[1]
    T, C = x.shape[1], x.shape[2]
    V = bufs[14].shape[1]
    wte = _weight(theta, ofs, WTE, V, C)
    wpe = _weight(theta, ofs, WPE, T, C)
    emb = np.empty(C, dtype=x.dtype)
    for i in range(C):
        emb[i] = wte[tok, i] + wpe[pos, i]
    rstd0[pos] = rmsnorm_forward_into(x[0, pos], emb)  # the residual stream starts normalised


@njit(cache=True)
def attention_input_forward(theta, ofs, l, pos, bufs):
    # xn1 = rmsnorm(x[l]); q, k, v = Wq xn1, Wk xn1, Wv xn1 (k, v: this position's cache row)
    x, _, xn1, rstd1, q, k, v = bufs[:7]
    C = x.shape[2]
    rstd1[l, pos] = rmsnorm_forward_into(xn1[l, pos], x[l, pos])
    matvec_forward_into(q[l, pos], xn1[l, pos], _layer_weight(theta, ofs, l, WQ, C, C))
    matvec_forward_into(k[l, pos], xn1[l, pos], _layer_weight(theta, ofs, l, WK, C, C))
    matvec_forward_into(v[l, pos], xn1[l, pos], _layer_weight(theta, ofs, l, WV, C, C))


@njit(cache=True)
def attention_output_forward(theta, ofs, act, l, pos, bufs):
    # xmid = x[l] + Wo ao;  x[l+1] = xmid + fc2(act(fc1(rmsnorm(xmid))))
    x, ao, xmid, xn2, rstd2, hpre, hact = bufs[0], bufs[8], bufs[9], bufs[10], bufs[11], bufs[12], bufs[13]
    mask = bufs[21]
    C = x.shape[2]
    matvec_forward_into(xmid[l, pos], ao[l, pos], _layer_weight(theta, ofs, l, WO, C, C))
    if mask.shape[0]:
        xmid[l, pos] *= mask[l, 0, pos]
    xmid[l, pos] += x[l, pos]
    rstd2[l, pos] = rmsnorm_forward_into(xn2[l, pos], xmid[l, pos])
    matvec_forward_into(hpre[l, pos], xn2[l, pos], _layer_weight(theta, ofs, l, FC1, 4 * C, C))
    activation_forward_into(hact[l, pos], hpre[l, pos], act)
    matvec_forward_into(x[l + 1, pos], hact[l, pos], _layer_weight(theta, ofs, l, FC2, C, 4 * C))
    if mask.shape[0]:
        x[l + 1, pos] *= mask[l, 1, pos]
    x[l + 1, pos] += xmid[l, pos]


@njit(cache=True)
def logits_forward(theta, ofs, pos, target, bufs):
    # logits = lm_head x[L]; returns -log p(target), or 0 when target < 0 (sampling)
    x, logits, probs = bufs[0], bufs[14], bufs[15]
    L, C = x.shape[0] - 1, x.shape[2]
    matvec_forward_into(logits[pos], x[L, pos], _weight(theta, ofs, LM_HEAD, logits.shape[1], C))
    if target < 0:
        return 0.0
    return softmax_xent_forward_into(probs[pos], logits[pos], target)


@njit(cache=True)
def position_forward(theta, ofs, n_head, act, tok, pos, target, bufs):
    """One position through every layer (SPEC §1), serial attention; appends k, v to the caches."""
    q, k, v, att, ao = bufs[4], bufs[5], bufs[6], bufs[7], bufs[8]
    t = pos + 1  # cached positions, this one included
    embed_forward(theta, ofs, tok, pos, bufs)
    for l in range(q.shape[0]):
        attention_input_forward(theta, ofs, l, pos, bufs)
        attn.attention_forward_into(ao[l, pos], att[l, pos], q[l, pos], k[l, :t], v[l, :t], n_head)
        attention_output_forward(theta, ofs, act, l, pos, bufs)
    return logits_forward(theta, ofs, pos, target, bufs)


# -- backward, one position, the pieces in reverse --------------------------------------


@njit(cache=True)
def logits_backward(theta, grad, ofs, pos, target, dloss, bufs):
    # dx = lm_head^T dlogits for the loss dloss * -log p(target); d lm_head += outer(dlogits, x[L])
    x, probs, dx = bufs[0], bufs[15], bufs[18]
    L, C = x.shape[0] - 1, x.shape[2]
    V = probs.shape[1]
    dlogits = np.empty(V, dtype=probs.dtype)
    softmax_xent_backward_into(dlogits, probs[pos], target, dloss)
    dx[:] = 0.0
    matvec_backward_into(dx, _weight(grad, ofs, LM_HEAD, V, C), dlogits, x[L, pos], _weight(theta, ofs, LM_HEAD, V, C))


@njit(cache=True)
def attention_output_backward(theta, grad, ofs, act, l, pos, bufs):
    # through the MLP and its residual (dx: d x[l+1] -> d xmid), then Wo (dao)
    ao, xn2, rstd2, hpre, hact, dx, dao = bufs[8], bufs[10], bufs[11], bufs[12], bufs[13], bufs[18], bufs[19]
    mask = bufs[21]
    C = dx.shape[0]
    dh = np.zeros(4 * C, dtype=dx.dtype)
    dy = dx * mask[l, 1, pos] if mask.shape[0] else dx
    matvec_backward_into(dh, _layer_weight(grad, ofs, l, FC2, C, 4 * C), dy, hact[l, pos],
                         _layer_weight(theta, ofs, l, FC2, C, 4 * C))
    dhpre = np.empty(4 * C, dtype=dx.dtype)
    activation_backward_into(dhpre, dh, hpre[l, pos], act)
    dxn = np.zeros(C, dtype=dx.dtype)
    matvec_backward_into(dxn, _layer_weight(grad, ofs, l, FC1, 4 * C, C), dhpre, xn2[l, pos],
                         _layer_weight(theta, ofs, l, FC1, 4 * C, C))
    rmsnorm_backward_into(dx, dxn, xn2[l, pos], rstd2[l, pos])  # dx += the normalised path
    dao[:] = 0.0
    dy = dx * mask[l, 0, pos] if mask.shape[0] else dx
    matvec_backward_into(dao, _layer_weight(grad, ofs, l, WO, C, C), dy, ao[l, pos],
                         _layer_weight(theta, ofs, l, WO, C, C))


@njit(cache=True)
def attention_input_backward(theta, grad, ofs, l, pos, bufs):
    # dq, dk[l, pos], dv[l, pos] -> Wq, Wk, Wv and the rmsnorm: dx becomes d x[l].
    # Later positions have all been walked back, so dk[l, pos] and dv[l, pos] are complete.
    xn1, rstd1, dk, dv, dx, dq = bufs[2], bufs[3], bufs[16], bufs[17], bufs[18], bufs[20]
    C = dx.shape[0]
    dxn = np.zeros(C, dtype=dx.dtype)
    matvec_backward_into(dxn, _layer_weight(grad, ofs, l, WQ, C, C), dq, xn1[l, pos],
                         _layer_weight(theta, ofs, l, WQ, C, C))
    matvec_backward_into(dxn, _layer_weight(grad, ofs, l, WK, C, C), dk[l, pos], xn1[l, pos],
                         _layer_weight(theta, ofs, l, WK, C, C))
    matvec_backward_into(dxn, _layer_weight(grad, ofs, l, WV, C, C), dv[l, pos], xn1[l, pos],
                         _layer_weight(theta, ofs, l, WV, C, C))
    rmsnorm_backward_into(dx, dxn, xn1[l, pos], rstd1[l, pos])


@njit(cache=True)
def embed_backward(grad, ofs, tok, pos, bufs):
    # x[0] = rmsnorm(wte[tok] + wpe[pos])
    x, rstd0, dx = bufs[0], bufs[1], bufs[18]
    T, C = x.shape[1], x.shape[2]
    V = bufs[15].shape[1]
    demb = np.zeros(C, dtype=dx.dtype)
    rmsnorm_backward_into(demb, dx, x[0, pos], rstd0[pos])
    gwte = _weight(grad, ofs, WTE, V, C)
    gwpe = _weight(grad, ofs, WPE, T, C)
    for i in range(C):
        gwte[tok, i] += demb[i]
        gwpe[pos, i] += demb[i]


@njit(cache=True)
def position_backward(theta, grad, ofs, n_head, act, tok, pos, target, dloss, bufs):
    """Adds d(dloss * loss_pos)/d(params) into `grad`, and this position's share of dK, dV.

    Call for pos = n-1 down to 0, after position_forward on every position.
    """
    q, k, v, att, dk, dv, dao, dq = bufs[4], bufs[5], bufs[6], bufs[7], bufs[16], bufs[17], bufs[19], bufs[20]
    t = pos + 1
    logits_backward(theta, grad, ofs, pos, target, dloss, bufs)
    for l in range(q.shape[0] - 1, -1, -1):
        attention_output_backward(theta, grad, ofs, act, l, pos, bufs)
        attn.attention_backward_into(dq, dk[l, :t], dv[l, :t], dao, q[l, pos], k[l, :t], v[l, :t],
                                     att[l, pos, :, :t], n_head)
        attention_input_backward(theta, grad, ofs, l, pos, bufs)
    embed_backward(grad, ofs, tok, pos, bufs)


# The compiled functions this backend calls from Python (MICROGPT_VERIFY_JIT, scripts/verify_numba_jit.py).
# The per-position kernels (matvec_*_into, rmsnorm_*_into, ...) are compiled into these.
JIT_ENTRY_POINTS = {
    "position_forward": position_forward,
    "position_backward": position_backward,
    # the split path around the parallel attention kernels
    "embed_forward": embed_forward,
    "attention_input_forward": attention_input_forward,
    "attention_forward_parallel_into": attn.attention_forward_parallel_into,
    "attention_output_forward": attention_output_forward,
    "logits_forward": logits_forward,
    "logits_backward": logits_backward,
    "attention_output_backward": attention_output_backward,
    "attention_backward_parallel_into": attn.attention_backward_parallel_into,
    "attention_input_backward": attention_input_backward,
    "embed_backward": embed_backward,
}


def compiled_kernels() -> dict[str, int]:
    """Entry point -> number of compiled signatures (0: not used yet, or Numba's JIT is disabled)."""
    return {name: len(getattr(fn, "signatures", ())) for name, fn in JIT_ENTRY_POINTS.items()}


def jit_report() -> str:
    lines = [f"numba JIT ({_threads()}); per-position kernels are compiled into these entry points:"]
    unused = []
    for name, fn in JIT_ENTRY_POINTS.items():
        if not hasattr(fn, "signatures"):
            lines.append(f"  {name}: NOT compiled (plain Python: NUMBA_DISABLE_JIT?)")
        elif fn.signatures:
            how = "loaded from cache" if sum(fn.stats.cache_hits.values()) else "compiled"
            lines.append(f"  {name}: numba, {len(fn.signatures)} signature(s), {how}")
        else:
            unused.append(name)
    if unused:
        lines.append("  not called (yet): " + ", ".join(unused))
    return "\n".join(lines)


def _threads() -> str:
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run: do not start the pool just to ask
        return f"threading layer not started, will be {numba.config.THREADING_LAYER!r}, " \
               f"{numba_threads()} thread(s) configured"
    return f"threading layer {layer}, {numba.get_num_threads()} thread(s)"


class NumpyBackend(Backend):
    name = "numpy"
    dtypes = ("float64", "float32")

    def __init__(self, cfg: Config, vocab_size: int, weights: dict[str, Matrix], train_docs=None):
        super().__init__(cfg, vocab_size, weights, train_docs)
        default_threading_layer()  # before anything parallel is compiled or run
        m = cfg.model
        self.dtype = np.dtype(cfg.training.dtype)
        shapes = param_shapes(m, vocab_size)
        self.names = list(shapes)
        self.offsets = np.cumsum([0] + [r * c for r, c in shapes.values()]).astype(np.int64)
        self.theta = np.empty(int(self.offsets[-1]), dtype=self.dtype)
        self.params = {}  # name -> 2-D view into theta
        for i, (name, shape) in enumerate(shapes.items()):
            view = self.theta[self.offsets[i]:self.offsets[i + 1]].reshape(shape)
            view[...] = np.asarray(weights[name], dtype=np.float64)
            self.params[name] = view
        self.grad = np.zeros_like(self.theta)
        self.m = np.zeros_like(self.theta)
        self.v = np.zeros_like(self.theta)
        self.act = CODES[m.activation]
        self.acts = self._new_activations(dropout_masks=cfg.training.dropout > 0)
        self.eval_acts = self._new_activations() if cfg.training.dropout > 0 else self.acts
        self._jit_reported = not envvars.flag("MICROGPT_VERIFY_JIT")

    def _new_activations(self, dropout_masks: bool = False) -> Activations:
        m = self.cfg.model
        return Activations(m.n_layer, m.n_embd, m.n_head, m.block_size, self.vocab_size, self.dtype, dropout_masks)

    def _parallel_from(self) -> int:
        """The first position whose attention is worth a parallel launch (block_size: none is)."""
        m = self.cfg.model
        first = max(0, math.ceil(attn.PARALLEL_MIN_WORK / m.n_embd) - 1)  # where t * C reaches the threshold
        if first >= m.block_size or not attn.use_parallel(first + 1, m.n_embd, m.n_head):
            return m.block_size
        return first

    # -- one document ------------------------------------------------------

    def _position_forward(self, tok, pos, target, bufs, parallel: bool) -> float:
        m = self.cfg.model
        if not parallel:
            return position_forward(self.theta, self.offsets, m.n_head, self.act, tok, pos, target, bufs)
        theta, ofs = self.theta, self.offsets
        _, _, _, _, q, k, v, att, ao = bufs[:9]
        t = pos + 1
        embed_forward(theta, ofs, tok, pos, bufs)
        for l in range(m.n_layer):
            attention_input_forward(theta, ofs, l, pos, bufs)
            attn.attention_forward_parallel_into(ao[l, pos], att[l, pos], q[l, pos], k[l, :t], v[l, :t], m.n_head)
            attention_output_forward(theta, ofs, self.act, l, pos, bufs)
        return logits_forward(theta, ofs, pos, target, bufs)

    def _position_backward(self, tok, pos, target, dloss, bufs, parallel: bool) -> None:
        m = self.cfg.model
        theta, grad, ofs = self.theta, self.grad, self.offsets
        if not parallel:
            position_backward(theta, grad, ofs, m.n_head, self.act, tok, pos, target, dloss, bufs)
            return
        q, k, v, att = bufs[4:8]
        dk, dv, _, dao, dq = bufs[16:21]
        t = pos + 1
        logits_backward(theta, grad, ofs, pos, target, dloss, bufs)
        for l in range(m.n_layer - 1, -1, -1):
            attention_output_backward(theta, grad, ofs, self.act, l, pos, bufs)
            attn.attention_backward_parallel_into(dq, dk[l, :t], dv[l, :t], dao, q[l, pos], k[l, :t], v[l, :t],
                                                  att[l, pos, :, :t], m.n_head)
            attention_input_backward(theta, grad, ofs, l, pos, bufs)
        embed_backward(grad, ofs, tok, pos, bufs)

    def _forward(self, tokens, acts: Activations, parallel_from: int) -> tuple[float, int]:
        """Mean loss of the document's n positions (the python backend's left fold), and n."""
        n = min(self.cfg.model.block_size, len(tokens) - 1)
        total = 0.0
        for pos in range(n):
            total += self._position_forward(tokens[pos], pos, tokens[pos + 1], acts.bufs, pos >= parallel_from)
        return (1 / n) * total, n

    def _backward(self, tokens, n: int, scale: float, acts: Activations, parallel_from: int) -> None:
        """Adds scale * d(mean loss)/d(params) into self.grad; positions walked back from the last."""
        acts.dk[:, :n] = 0.0
        acts.dv[:, :n] = 0.0
        dloss = scale / n  # the document loss is the mean over its positions
        for pos in range(n - 1, -1, -1):
            self._position_backward(tokens[pos], pos, tokens[pos + 1], dloss, acts.bufs, pos >= parallel_from)

    # -- training ----------------------------------------------------------

    def gradient(self, docs, step=0) -> float:
        """Set self.grad to d(step loss)/d(params), the step loss being the mean document loss (of step `step`)."""
        parallel_from = self._parallel_from()
        self.grad.fill(0.0)
        losses = []
        m, t = self.cfg.model, self.cfg.training
        masks = dropout.masks_array(t.seed, step, range(len(docs)), m.n_layer, m.block_size, m.n_embd, t.dropout,
                                    self.dtype) if t.dropout else None
        for j, tokens in enumerate(docs):  # a batch and gradient accumulation are the same sum here
            if masks is not None:
                self.acts.mask[...] = masks[j]
            loss, n = self._forward(tokens, self.acts, parallel_from)
            self._backward(tokens, n, 1 / len(docs), self.acts, parallel_from)
            losses.append(loss)
        if len(losses) == 1:
            return float(losses[0])
        total = 0.0
        for loss in losses:
            total += loss
        return float(total * (1 / len(losses)))

    def step(self, docs, lr, step):
        t = self.cfg.training
        loss = self.gradient(docs, step)
        adam_step_fused(self.theta, self.grad, self.m, self.v, lr, t.beta1, t.beta2, t.eps, step,
                        t.weight_decay)
        if not self._jit_reported:
            self._jit_reported = True
            print(jit_report(), file=sys.stderr)
        return loss

    def compile(self) -> float:
        """Compile (or load from Numba's cache) both position functions on a throwaway document."""
        import time

        t0 = time.perf_counter()
        acts = self._new_activations()
        saved = self.grad
        self.grad = np.zeros_like(self.theta)
        try:
            tokens = [self.bos, 0, self.bos][: self.cfg.model.block_size + 1]
            block = self.cfg.model.block_size
            # the serial path, and the parallel one if training can take it
            for parallel_from in ([block, 0] if self._parallel_from() < block else [block]):
                _, n = self._forward(tokens, acts, parallel_from)
                self._backward(tokens, n, 1.0, acts, parallel_from)
        finally:
            self.grad = saved
        self.mark_compiled()
        return time.perf_counter() - t0

    @classmethod
    def compiled_variant(cls, cfg, vocab_size):
        return f"numpy-{cfg.training.dtype}"

    # -- inference ---------------------------------------------------------

    def doc_loss(self, tokens):
        return float(self._forward(tokens, self.eval_acts, self._parallel_from())[0])

    def eval_loss(self, docs):
        total = 0.0
        for d in docs:
            total += self.doc_loss(d)
        return total / len(docs)

    def new_cache(self):
        return self._new_activations()

    def next_logits(self, cache, token, pos):
        self._position_forward(token, pos, -1, cache.bufs, pos >= self._parallel_from())
        return cache.logits[pos].tolist()

    # -- state -------------------------------------------------------------

    def _as_lists(self, flat) -> dict[str, Matrix]:
        return {name: flat[self.offsets[i]:self.offsets[i + 1]].reshape(self.params[name].shape).tolist()
                for i, name in enumerate(self.names)}

    def get_weights(self):
        return self._as_lists(self.theta)

    def get_adam(self):
        return self._as_lists(self.m), self._as_lists(self.v)

    def set_adam(self, m, v):
        for flat, source in ((self.m, m), (self.v, v)):
            for i, name in enumerate(self.names):
                flat[self.offsets[i]:self.offsets[i + 1]] = np.asarray(source[name], dtype=np.float64).ravel()
