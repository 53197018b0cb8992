"""microgpt.experiment: from a config and its documents to the shuffled split, the initial weights and a backend."""

from __future__ import annotations

import random

import pytest

from conftest import tiny_config_dict
from microgpt.config import config_from_dict, load_scenario
from microgpt.data import Dataset
from microgpt.errors import MicrogptError
from microgpt.experiment import prepare
from microgpt.params import num_params, param_shapes


def test_rng_stream_is_that_of_the_module_level_reference(names_path):
    """random.seed(42); shuffle; gauss per parameter in order: the reference's use of the global RNG."""
    cfg = load_scenario("names")
    exp = prepare(cfg, names_path)
    random.seed(42)
    with open(names_path) as f:
        docs = [line.strip() for line in f.read().strip().split("\n") if line.strip()]
    random.shuffle(docs)
    assert exp.docs == docs
    V = len(sorted(set("".join(docs)))) + 1
    for name, (rows, cols) in param_shapes(cfg.model, V).items():
        assert exp.weights[name] == [[random.gauss(0, 0.08) for _ in range(cols)] for _ in range(rows)], name
    assert exp.rng.random() == random.random()  # sampling continues the same stream
    assert num_params(cfg.model, V) == 4192


def tiny_experiment(n_docs=30, **training):
    docs = ["".join(random.Random(i).choice("abcde") for _ in range(2 + i % 5)) for i in range(n_docs)]
    cfg = config_from_dict(tiny_config_dict()).replace("training", **training)
    return prepare(cfg, dataset=Dataset(docs, "test", "0" * 64), quiet=True)


def test_the_held_out_tenth_is_the_end_of_the_shuffled_documents():
    """30 documents: the shuffle of the seed's stream, 27 to train on, the last 3 held out, each BOS ... BOS."""
    exp = tiny_experiment()
    assert sorted(exp.docs) == sorted(exp.dataset.docs) and exp.docs != exp.dataset.docs
    bos = exp.tokenizer.bos
    assert len(exp.train_tokens) == 27 and len(exp.val_tokens) == 3
    assert exp.val_tokens[0] == [bos] + [exp.tokenizer.index[ch] for ch in exp.docs[27]] + [bos]
    assert exp.num_params == num_params(exp.cfg.model, 6)  # a..e and BOS


def test_make_backend_builds_the_configured_backend_and_refuses_a_dtype_it_lacks():
    """make_backend() takes training.backend; a dtype the backend does not declare is one MicrogptError."""
    exp = tiny_experiment()
    backend = exp.make_backend()
    assert type(backend).__name__ == "PythonBackend"
    assert backend.step(exp.train_tokens[:1], 0.0, 0) > 0
    with pytest.raises(MicrogptError, match="backend 'python' supports dtype float64, not float32"):
        tiny_experiment(dtype="float32").make_backend()
