"""Learning-rate schedules and which documents a step trains on (SPEC §2)."""

from __future__ import annotations

import math

from .config import TrainingConfig


def learning_rate(step: int, t: TrainingConfig) -> float:
    """lr_t for 0-based `step` of a run of `t.num_steps` steps."""
    if t.schedule == "linear":
        return t.learning_rate * (1 - step / t.num_steps)
    if t.schedule == "cosine":
        return t.learning_rate * 0.5 * (1 + math.cos(math.pi * step / t.num_steps))
    return t.learning_rate


def docs_per_step(t: TrainingConfig) -> int:
    return t.batch_size * t.grad_accum


def step_doc_indices(step: int, per_step: int, n_docs: int) -> list[int]:
    """Step s takes the next `per_step` documents of the cycle over the training set."""
    first = step * per_step
    return [(first + j) % n_docs for j in range(per_step)]
