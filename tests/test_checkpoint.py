"""model.json: a round trip gives identical logits; every kind of bad file has its own message."""

import json
import os

import pytest

from conftest import tiny_config_dict
from microgpt import checkpoint
from microgpt.backends.python import PythonBackend
from microgpt.config import config_from_dict
from microgpt.errors import CheckpointError
from microgpt.experiment import prepare
from microgpt.train import make_checkpoint


@pytest.fixture
def trained(names_path, tmp_path):
    cfg = config_from_dict(tiny_config_dict())
    exp = prepare(cfg, names_path)
    be = exp.make_backend("python")
    be.train_steps(0, 3)
    path = str(tmp_path / "model.json")
    checkpoint.save(path, make_checkpoint(exp, be, 3))
    return exp, be, path


def test_round_trip_gives_identical_logits_and_state(trained):
    exp, be, path = trained
    ck = checkpoint.load(path)
    assert ck.uchars == exp.tokenizer.uchars and ck.config == exp.cfg
    assert ck.weights == be.get_weights()
    again = PythonBackend(ck.config, ck.vocab_size, ck.weights)
    again.set_adam(ck.train_state["adam_m"], ck.train_state["adam_v"])
    assert again.get_adam() == be.get_adam()
    c1, c2 = be.new_cache(), again.new_cache()
    for pos, tok in enumerate([exp.tokenizer.bos, 1, 2, 3]):
        assert be.next_logits(c1, tok, pos) == again.next_logits(c2, tok, pos)
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]


def _rewrite(path, change):
    with open(path) as f:
        doc = json.load(f)
    change(doc)
    with open(path, "w") as f:
        json.dump(doc, f)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("weights"), "missing key 'weights'"),
    (lambda d: d["weights"].pop("lm_head"), "'weights' is missing parameter 'lm_head'"),
    (lambda d: d["weights"]["wte"].pop(), "weights.wte: expected shape"),
    (lambda d: d["weights"]["wpe"][0].append(0.5), "weights.wpe: expected shape"),
    (lambda d: d["weights"]["wpe"][0].__setitem__(0, "x"), "not a finite number"),
    (lambda d: d.update(version=99), "version 99 is not supported"),
    (lambda d: d.update(format="other"), "not a microgpt model file"),
    (lambda d: d["config"]["model"].update(n_head=3), "invalid config"),
    (lambda d: d.update(uchars=["ab"]), "'uchars' must be"),
    (lambda d: d["train_state"].update(step=-1), "train_state.step"),
])
def test_each_problem_has_its_own_message(trained, change, message):
    _, _, path = trained
    _rewrite(path, change)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert message in str(e.value) and str(e.value).startswith(path)


def test_truncated_not_json_and_missing(trained, tmp_path):
    _, _, path = trained
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="not a valid model file .*truncated"):
        checkpoint.load(path)
    with open(path, "w") as f:
        f.write("hello")
    with pytest.raises(CheckpointError, match="not a valid model file"):
        checkpoint.load(path)
    with pytest.raises(CheckpointError, match="no such model file"):
        checkpoint.load(str(tmp_path / "none.json"))
