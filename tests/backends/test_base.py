"""microgpt.backends.base: what Backend does for every backend (the step loop, validation, a draw) and the
mean loss over length-sorted batches."""

from __future__ import annotations

import random

import pytest

from conftest import tiny_config_dict
from microgpt.backends.base import Backend, mean_loss_in_batches
from microgpt.config import config_from_dict
from microgpt.sampling_math import next_token
from microgpt.schedule import learning_rate, step_doc_indices


class Recorder(Backend):
    """A backend that computes nothing: it records what Backend asks of it."""

    name = "recorder"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def step(self, docs, lr, step):
        self.calls.append((docs, lr, step))
        return float(step)

    def doc_loss(self, tokens):
        return float(len(tokens))

    def new_cache(self):
        return []

    def next_logits(self, cache, token, pos):
        cache.append(token)
        return [0.5, 2.0, -1.0, float(pos)]

    def get_weights(self):
        return {}

    def get_adam(self):
        return {}, {}

    def set_adam(self, m, v):
        pass


def recorder(**training):
    cfg = config_from_dict(tiny_config_dict()).replace("training", schedule="linear", num_steps=10, **training)
    docs = [[4, i % 4, 4] for i in range(7)]
    return Recorder(cfg, 5, {}, docs), docs


def test_train_steps_gives_each_step_its_documents_and_its_learning_rate():
    """Step s gets docs[step_doc_indices(s, b·a, n)] and learning_rate(s); the losses come back in order."""
    be, docs = recorder(batch_size=2, grad_accum=2)
    assert be.per_step == 4 and be.bos == 4
    assert be.train_steps(3, 3) == [3.0, 4.0, 5.0]
    t = be.cfg.training
    assert be.calls == [([docs[i] for i in step_doc_indices(s, 4, 7)], learning_rate(s, t), s) for s in (3, 4, 5)]


def test_validation_is_the_mean_document_loss_and_a_draw_is_sampling_maths():
    """eval_loss averages doc_loss; sample_next is next_token on next_logits, the same draws from the same rng."""
    be, _ = recorder()
    assert be.eval_loss([[1, 2], [1, 2, 3, 4]]) == 3.0
    cache, rng, want_rng = be.new_cache(), random.Random(9), random.Random(9)
    got = be.sample_next(cache, 3, 1, 0.8, rng)
    assert got == next_token([0.5, 2.0, -1.0, 1.0], 0.8, want_rng) and cache == [3]
    assert rng.getstate() == want_rng.getstate()


def test_one_process_stops_for_its_signal_and_has_nothing_to_compile():
    """The defaults a backend overrides only when it must: stop at once, compile in 0 s, write checkpoints."""
    be, _ = recorder()
    assert be.stop_signal(None) is None and be.stop_signal(15) == 15
    assert be.compile() == 0.0 and be.writes_checkpoints and be.dtypes == ("float64",)


def test_a_backend_must_implement_the_abstract_methods():
    """Backend is abstract: a subclass without step, doc_loss, the cache and the state cannot be built."""
    with pytest.raises(TypeError, match="abstract"):
        type("Half", (Backend,), {"step": Recorder.step})(config_from_dict(tiny_config_dict()), 5, {})


def test_mean_loss_in_batches_is_the_plain_mean_with_batches_of_similar_lengths():
    """Documents go per_batch at a time, shortest first; the result is the mean over every document."""
    docs = [[0] * n for n in (5, 1, 4, 2, 3)]
    batches = []

    def losses(batch):
        batches.append([len(d) for d in batch])
        return [10.0 * len(d) for d in batch]

    assert mean_loss_in_batches(docs, losses, 2) == pytest.approx(30.0)
    assert batches == [[1, 2], [3, 4], [5]]
