"""What every backend does, whatever it computes with.

A backend owns the weights and the Adam moments of one model and knows how to

- `train_steps(start, count)`: run optimizer steps start .. start+count-1 on
  the training documents it was given (step s takes the documents
  `step_doc_indices(s, ...)`), returning the loss of each step;
- `doc_loss(tokens)`: the loss of one document, no gradient (validation);
- `new_cache()` / `next_logits(cache, token, pos)`: one position of the
  forward pass with a KV cache (sampling);
- give its state back as plain Python lists (checkpoints) and take it again.

Weights cross this boundary as {name: [[float]]} in `params.param_shapes`
order; Adam moments the same way. Losses are Python floats.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..compile_cache import mark_warm
from ..config import Config
from ..sampling_math import next_token
from ..schedule import docs_per_step, learning_rate, step_doc_indices

Matrix = list  # list[list[float]], row-major [out][in]


def mean_loss_in_batches(docs, doc_losses, per_batch: int) -> float:
    """The mean of `doc_losses` (documents -> their losses) over `docs`, `per_batch` documents per call.

    Documents of similar length go together, so that a padded batch is little padding.
    """
    order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
    losses = [0.0] * len(docs)
    for first in range(0, len(order), per_batch):
        chunk = order[first:first + per_batch]
        for i, loss in zip(chunk, doc_losses([docs[i] for i in chunk])):
            losses[i] = loss
    return sum(losses) / len(losses)


class Backend(ABC):
    name = "?"
    dtypes = ("float64",)
    writes_checkpoints = True  # False on the ranks of a torchrun job other than 0

    def __init__(self, cfg: Config, vocab_size: int, weights: dict[str, Matrix],
                 train_docs: list[list[int]] | None = None):
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.bos = vocab_size - 1
        self.train_docs = train_docs or []
        self.per_step = docs_per_step(cfg.training)

    # -- training --------------------------------------------------------

    def train_steps(self, start: int, count: int) -> list[float]:
        """Run `count` optimizer steps from step `start`; the loss of each."""
        t = self.cfg.training
        losses = []
        for step in range(start, start + count):
            idx = step_doc_indices(step, self.per_step, len(self.train_docs))
            docs = [self.train_docs[i] for i in idx]
            losses.append(self.step(docs, learning_rate(step, t), step))
        return losses

    @abstractmethod
    def step(self, docs: list[list[int]], lr: float, step: int) -> float:
        """Forward, backward and one Adam update on `docs`; the mean document loss."""

    # -- inference -------------------------------------------------------

    @abstractmethod
    def doc_loss(self, tokens: list[int]) -> float:
        """Mean cross-entropy of one document's n = min(T, len-1) predictions."""

    def eval_loss(self, docs: list[list[int]]) -> float:
        return sum(self.doc_loss(d) for d in docs) / len(docs)

    @abstractmethod
    def new_cache(self):
        """An empty KV cache for `next_logits`."""

    @abstractmethod
    def next_logits(self, cache, token: int, pos: int) -> list[float]:
        """Logits for the token after `token` at position `pos`, extending `cache`."""

    def sample_next(self, cache, token: int, pos: int, temperature: float, rng) -> int:
        """next_logits, then the token sampling_math.next_token draws from them (a backend may compile the two)."""
        return next_token(self.next_logits(cache, token, pos), temperature, rng)

    # -- state -----------------------------------------------------------

    @abstractmethod
    def get_weights(self) -> dict[str, Matrix]:
        ...

    @abstractmethod
    def get_adam(self) -> tuple[dict[str, Matrix], dict[str, Matrix]]:
        """The Adam moments (m, v), by parameter name."""

    @abstractmethod
    def set_adam(self, m: dict[str, Matrix], v: dict[str, Matrix]) -> None:
        ...

    def stop_signal(self, received: int | None) -> int | None:
        """The signal training stops for before the next step, given the one this process received (or None).

        One process: the one it received, at once. The ranks of a torchrun job override this: each must
        run every step the others run, or a rank is left waiting in a collective that never completes.
        """
        return received

    def checkpoint_written(self) -> None:
        """Called in every process once the run's checkpoint is written (by whichever process writes it)."""

    def compile(self) -> float:
        """Compile whatever needs compiling before timing starts; seconds spent."""
        return 0.0

    @classmethod
    def compiled_variant(cls, cfg: Config, vocab_size: int) -> str | None:
        """A name for what compile() builds for this config (None: nothing), for the cache's markers.

        Known before the backend is built, so that `--backend auto` can ask whether a run would
        first have to compile (compile_cache.is_warm); compile() marks it done.
        """
        return None

    def mark_compiled(self) -> None:
        """Leave the cache's marker for what compile() just built (its last line in a backend that compiles)."""
        mark_warm(type(self).compiled_variant(self.cfg, self.vocab_size))
