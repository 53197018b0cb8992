"""The fused backend: forward, backward and Adam compiled with Numba, many steps per call.

`train_steps(start, count)` is one call into compiled code that runs all
`count` steps (microgpt/kernels/fused_train.py for one document a step,
fused_batch.py for more: each layer one BLAS product per group of documents,
threads over groups): the training documents were
packed once into an int32 token array with offsets, every buffer was
allocated here, and Python wakes up only when the call returns. The model's
arithmetic is in microgpt/kernels/fused_model.py and fused_layers.py, on
256-bit vectors (fused_simd.py); docs/fused.md explains the layout and the
measurements.

In float64 it computes what the `python` backend computes, to rounding: the
tests hold every loss and weight to 1e-10 relative over whole runs.
"""

from __future__ import annotations

import math
import random
import time

import numba
import numpy as np

from .. import dropout
from ..config import Config
from ..errors import MicrogptError
from ..kernels import fused_batch, fused_model, fused_sample, fused_train
from ..kernels.fused_layers import RELU, RELU2
from ..params import num_params, param_offsets, param_shapes, param_views
from ..sampling_math import inverse_temperature, next_token
from ..schedule import docs_per_step
from ..threads import default_threading_layer, scipy_blas_one_thread
from .base import Backend, Matrix

# below this many multiply-adds per step, waking a second thread costs more than it saves
MIN_PARALLEL_WORK = 2_000_000


def pack_docs(docs: list[list[int]], vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents as one int32 token array and int64 offsets (document d is tokens[offsets[d]:offsets[d+1]])."""
    offsets = np.zeros(len(docs) + 1, np.int64)
    for d, doc in enumerate(docs):
        if len(doc) < 2:
            raise MicrogptError(f"document {d} has {len(doc)} token(s); a document needs at least 2 "
                                "(an input and a target)")
        offsets[d + 1] = offsets[d] + len(doc)
    tokens = np.fromiter((t for doc in docs for t in doc), np.int64, int(offsets[-1])) if docs else \
        np.zeros(0, np.int64)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise MicrogptError(f"token ids must be in 0..{vocab_size - 1}")
    return tokens.astype(np.int32), offsets


def sample_token(logits: np.ndarray, exps: np.ndarray, temperature: float, rng) -> int:
    """sampling.next_token(logits.tolist(), temperature, rng): the same token and the same RNG draw.

    The softmax and the draw run compiled (kernels/fused_sample.py); greedy
    decoding, a scale that overflows and unusable logits go to
    sampling.next_token itself. `exps` (V,) float64 is scratch.
    """
    if 0 < temperature < math.inf:
        total = fused_sample.softmax_numerators(exps, logits, inverse_temperature(temperature))
        if math.isfinite(total):
            return fused_sample.draw(exps, total ** -1, rng.random())  # rng.choices' one number
    return next_token(logits.tolist(), temperature, rng)


class _Cache:
    """A KV cache for `next_logits`: one slot of activations and the tokens seen so far."""

    def __init__(self, backend: "FusedBackend"):
        self.acts = fused_model.new_acts(backend.model, backend.dtype, 1)
        self.tokens = np.zeros(backend.cfg.model.block_size + 1, np.int32)
        self.logits = np.zeros(backend.vocab_size, backend.dtype)
        self.exps = np.zeros(backend.vocab_size, np.float64)  # the sampler's scratch
        self.length = 0  # positions 0..length-1 are in the cache


def uses_batch_loop(cfg: Config) -> bool:
    """Whether a run of this config trains on fused_batch (else fused_train.train_loop, one document a step)."""
    return docs_per_step(cfg.training) > 1 or cfg.training.dropout > 0


def uses_threads(cfg: Config, vocab_size: int) -> bool:
    """Whether a run of this config takes the threaded batch loop (2 groups or more, and enough work)."""
    k, mc = docs_per_step(cfg.training), cfg.model
    if k == 1 or fused_batch.group_count(k, mc.block_size) == 1 or numba.get_num_threads() < 2:
        return False
    return k * mc.block_size * num_params(mc, vocab_size) >= MIN_PARALLEL_WORK


class FusedBackend(Backend):
    name = "fused"
    dtypes = ("float64", "float32")

    def __init__(self, cfg: Config, vocab_size: int, weights: dict[str, Matrix], train_docs=None):
        super().__init__(cfg, vocab_size, weights, train_docs)
        default_threading_layer()  # before the threaded loop first runs: workqueue, not omp's spinning workers
        mc, t = cfg.model, cfg.training
        self.dtype = np.dtype(t.dtype)
        self.shapes = param_shapes(mc, vocab_size)
        self.model = fused_model.Model(vocab_size, mc.n_embd, mc.n_head, mc.n_layer, mc.block_size,
                                       RELU2 if mc.activation == "relu2" else RELU,
                                       float((mc.head_dim ** 0.5) ** -1))
        self.hyper = fused_train.Hyper(float(t.learning_rate), float(t.beta1), float(t.beta2), float(t.eps),
                                       fused_train.SCHEDULES[t.schedule], int(t.num_steps),
                                       float(t.weight_decay), int(t.seed), dropout.threshold(t.dropout),
                                       dropout.scale(t.dropout))
        self._check_layout()

        P = fused_model.num_params(self.model)
        self.w = np.zeros(P, self.dtype)
        self._set_flat(self.w, weights)
        self.wT = np.zeros(P, self.dtype)
        fused_train.refresh_transposed(self.w, self.wT, self.model)
        self.m = np.zeros(P, self.dtype)
        self.v = np.zeros(P, self.dtype)
        self.grad = np.zeros(P, self.dtype)

        k = self.per_step
        # k > 1: the step's documents go through each layer together, in groups (kernels/fused_batch.py);
        # dropout runs there only, even for one document a step
        self.groups = fused_batch.group_count(k, mc.block_size) if k > 1 else 1
        self.batch = fused_batch.new_batch(self.model, self.dtype, k, t.dropout > 0) \
            if uses_batch_loop(cfg) else None
        if self.batch is not None:
            scipy_blas_one_thread()
        self.slot_grads = np.zeros((self.groups, P) if self.groups > 1 else (1, 1), self.dtype)
        self.acts = fused_model.new_acts(self.model, self.dtype, 1)
        self.doc_losses = np.zeros(k, np.float64)
        self.tokens, self.offsets = pack_docs(self.train_docs, vocab_size)
        self._eval_acts = None
        self._compiled = False

    # -- layout ----------------------------------------------------------

    def _check_layout(self):
        """The compiled code's offsets are those of params.param_shapes (a change there must show up here)."""
        offs = param_offsets(self.shapes)
        shared = fused_model.offsets(self.model, 0)
        expected = {"wte": shared.wte, "wpe": shared.wpe, "lm_head": shared.lm_head}
        for li in range(self.cfg.model.n_layer):
            layer = fused_model.offsets(self.model, li)
            expected.update({f"layer{li}.attn_wq": layer.qkv, f"layer{li}.attn_wo": layer.wo,
                             f"layer{li}.mlp_fc1": layer.fc1, f"layer{li}.mlp_fc2": layer.fc2})
        bad = [n for n, off in expected.items() if offs[n] != off]
        if bad or num_params(self.cfg.model, self.vocab_size) != fused_model.num_params(self.model):
            raise AssertionError(f"fused parameter layout out of step with params.param_shapes: {bad}")

    def _set_flat(self, flat: np.ndarray, mats: dict[str, Matrix]):
        for n, view in param_views(flat, self.shapes).items():
            view[...] = np.asarray(mats[n], dtype=np.float64)  # one rounding, from the Python floats

    def _unflatten(self, flat: np.ndarray) -> dict[str, Matrix]:
        return {n: view.tolist() for n, view in param_views(flat, self.shapes).items()}

    # -- training --------------------------------------------------------

    def _use_threads(self) -> bool:
        return uses_threads(self.cfg, self.vocab_size)

    @classmethod
    def compiled_variant(cls, cfg: Config, vocab_size: int) -> str:
        # compile() builds one loop of three, for one dtype: these are separate compilations
        loop = "doc" if not uses_batch_loop(cfg) else \
            "batch-threads" if uses_threads(cfg, vocab_size) else "batch"
        return f"fused-{cfg.training.dtype}-{loop}"

    def _run(self, tokens, offsets, start: int, count: int, hyper, threads: bool | None = None) -> list[float]:
        losses = np.zeros(count, np.float64)
        threads = self._use_threads() if threads is None else threads
        if self.batch is None:
            loop, bufs = fused_train.train_loop, self.acts
        else:
            threaded = threads and self.groups > 1  # one group: nothing to share out, the same arithmetic
            loop, bufs = (fused_batch.batch_loop_threads if threaded else fused_batch.batch_loop), self.batch
        loop(self.w, self.wT, self.m, self.v, self.grad, self.slot_grads, bufs, tokens, offsets, self.model,
             hyper, start, count, self.per_step, self.doc_losses, losses)
        return losses.tolist()

    def train_steps(self, start: int, count: int) -> list[float]:
        if count <= 0:
            return []
        if not self.train_docs:
            raise MicrogptError("no training documents to train on")
        return self._run(self.tokens, self.offsets, start, count, self.hyper)

    def step(self, docs, lr, step):
        """One step on exactly these documents at learning rate `lr` (the base interface)."""
        if len(docs) != self.per_step:
            raise MicrogptError(f"this backend was built for {self.per_step} document(s) per step, got {len(docs)}")
        tokens, offsets = pack_docs(docs, self.vocab_size)
        hyper = self.hyper._replace(learning_rate=float(lr), schedule=fused_train.CONSTANT)
        # documents (step*k + j) % k = j: exactly `docs`, in order
        return self._run(tokens, offsets, step, 1, hyper)[0]

    # -- inference -------------------------------------------------------

    def _eval(self, docs) -> np.ndarray:
        if self._eval_acts is None:
            self._eval_acts = fused_model.new_acts(self.model, self.dtype, 1)
        tokens, offsets = pack_docs(docs, self.vocab_size)
        out = np.zeros(len(docs), np.float64)
        fused_train.eval_docs(self.w, self.wT, self.model, self._eval_acts, tokens, offsets, out)
        return out

    def doc_loss(self, tokens):
        return float(self._eval([tokens])[0])

    def eval_loss(self, docs):
        total = 0.0
        for x in self._eval(docs).tolist():  # in order, like the python backend
            total = total + x
        return total / len(docs)

    def new_cache(self):
        return _Cache(self)

    def _forward_at(self, cache, token, pos):
        """Position pos of the forward pass, its logits into cache.logits."""
        T = self.cfg.model.block_size
        if not 0 <= pos < T:
            raise MicrogptError(f"position {pos} is outside the context (0..{T - 1})")
        if pos > cache.length:
            raise MicrogptError(f"position {pos} skips positions {cache.length}..{pos - 1} of the cache")
        if not 0 <= token < self.vocab_size:
            raise MicrogptError(f"token {token} is not in the vocabulary (0..{self.vocab_size - 1})")
        cache.tokens[pos] = token
        fused_train.forward_at(self.w, self.wT, self.model, cache.acts, cache.tokens, pos, cache.logits)
        cache.length = pos + 1

    def next_logits(self, cache, token, pos):
        self._forward_at(cache, token, pos)
        return cache.logits.tolist()

    def sample_next(self, cache, token, pos, temperature, rng):
        """next_logits, then the token sampling.next_token would draw from them, the softmax compiled."""
        self._forward_at(cache, token, pos)
        return sample_token(cache.logits, cache.exps, temperature, rng)

    # -- state -----------------------------------------------------------

    def get_weights(self):
        return self._unflatten(self.w)

    def get_adam(self):
        return self._unflatten(self.m), self._unflatten(self.v)

    def set_adam(self, m, v):
        self._set_flat(self.m, m)
        self._set_flat(self.v, v)

    def compile(self) -> float:
        """Compile (or load from the disk cache) every kernel this backend calls; seconds spent.

        Runs them once on a throwaway two-token document of a tiny model with
        the same types, so no state here changes.
        """
        if self._compiled:
            return 0.0
        t0 = time.perf_counter()
        tiny = self.cfg.replace("model", n_embd=4, n_head=1, n_layer=1, block_size=2)
        shapes = param_shapes(tiny.model, 3)
        weights = {n: [[0.01 * (i + j) for j in range(c)] for i in range(r)] for n, (r, c) in shapes.items()}
        docs = [[2, 0, 2], [2, 1, 2]]
        # only the loop this backend runs: one document a step, the batch loop, or the threaded batch loop
        threads = self._use_threads()
        # k > 1: 2 documents of the tiny model's 2 positions make one group, 2 * GROUP_ROWS / 2 make two
        batch = 1 if self.per_step == 1 else fused_batch.GROUP_ROWS if threads else 2
        # a tame learning rate: the probe samples after its step, and the run's own (1e150, say) would make
        # its logits inf and fail here, before training could say that it diverged
        probe = FusedBackend(tiny.replace("training", batch_size=batch, grad_accum=1, learning_rate=0.01), 3,
                             weights, docs)
        probe.train_steps(0, 1)
        if threads:  # the probe is too small to pick the threaded loop itself
            probe._run(probe.tokens, probe.offsets, 1, 1, probe.hyper, threads=True)
        probe.eval_loss(docs)
        probe.sample_next(probe.new_cache(), 2, 0, 1.0, random.Random(0))
        probe._compiled = self._compiled = True
        self.mark_compiled()
        return time.perf_counter() - t0
