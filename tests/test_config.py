"""Scenario configs: the values of SPEC §3, and errors that name the file and the key."""

import json

import pytest

from microgpt.config import config_from_dict, load_config, load_scenario, scenario_names
from microgpt.errors import ConfigError


def test_builtin_scenarios_exist():
    assert {"names", "alice", "alice_v2"} <= set(scenario_names())


@pytest.mark.parametrize("name, model, training, data", [
    ("names", (16, 4, 1, 16, "relu", 0.08, False), (0.01, 0.85, 0.99, 1e-8, "linear", 1000), ("lines", None, True)),
    ("alice", (32, 4, 2, 128, "relu2", 0.02, True), (0.01, 0.9, 0.95, 1e-8, "cosine", 2000), ("chunks", 128, True)),
    ("alice_v2", (32, 4, 2, 128, "relu2", 0.02, True), (0.01, 0.9, 0.95, 1e-8, "cosine", 5000), ("chunks", 128, False)),
])
def test_scenario_values_are_those_of_the_spec(name, model, training, data):
    cfg = load_scenario(name)
    m, t, d = cfg.model, cfg.training, cfg.data
    assert (m.n_embd, m.n_head, m.n_layer, m.block_size, m.activation, m.init_std, m.zero_init_proj) == model
    assert (t.learning_rate, t.beta1, t.beta2, t.eps, t.schedule, t.num_steps) == training
    assert (d.format, d.chunk_size, d.trailing_bos) == data
    assert t.seed == 42 and t.batch_size == 1 and t.grad_accum == 1 and t.dtype == "float64"
    if name != "names":
        assert d.chunk_overlap == 64 and d.gutenberg


@pytest.mark.parametrize("mutate, key", [
    (lambda d: d["model"].update(n_embd=30), "model.n_head"),
    (lambda d: d["model"].update(block_size=0), "model.block_size"),
    (lambda d: d["model"].update(bogus=1), "model.bogus"),
    (lambda d: d.update(extra={}), "extra"),
    (lambda d: d["model"].update(n_layer="2"), "model.n_layer"),
    (lambda d: d["model"].update(n_layer=2.0), "model.n_layer"),
    (lambda d: d["model"].update(zero_init_proj=1), "model.zero_init_proj"),
    (lambda d: d["model"].update(activation="gelu"), "model.activation"),
    (lambda d: d["training"].update(learning_rate=-0.1), "training.learning_rate"),
    (lambda d: d["training"].update(beta2=1.0), "training.beta2"),
    (lambda d: d["training"].update(weight_decay=-0.1), "training.weight_decay"),
    (lambda d: d["training"].update(dropout=1.0), "training.dropout"),
    (lambda d: d["training"].update(dropout=-0.1), "training.dropout"),
    (lambda d: d["training"].update(num_steps=True), "training.num_steps"),
    (lambda d: d["training"].update(backend="jax"), "training.backend"),
    (lambda d: d["data"].update(format="chunks", chunk_size=64, chunk_overlap=64), "data.chunk_overlap"),
    (lambda d: d["data"].update(format="chunks"), "data.chunk_size"),
    (lambda d: d["data"].update(file="../names.txt"), "data.file"),
    (lambda d: d["sampling"].update(temperature=-1), "sampling.temperature"),
    (lambda d: d.update(model=[1, 2]), "model"),
])
def test_invalid_values_name_the_file_and_key(tmp_path, mutate, key):
    raw = load_scenario("names").to_dict()
    mutate(raw)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    msg = str(e.value)
    assert msg.startswith(str(path)), msg
    assert f" {key}:" in msg or f"{key}:" in msg.split(": ", 1)[1], msg


def test_not_json_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": {"n_embd": 16,')
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(str(tmp_path / "nope.json"))
    with pytest.raises(ConfigError, match="unknown scenario 'nope'"):
        load_scenario("nope")


def test_partial_config_takes_defaults_and_round_trips():
    cfg = config_from_dict({"name": "mine", "model": {"n_embd": 8, "n_head": 2}})
    assert cfg.model.n_layer == 1 and cfg.training.learning_rate == 0.01
    assert config_from_dict(cfg.to_dict()) == cfg
    assert cfg.replace("training", num_steps=7).training.num_steps == 7
    with pytest.raises(ConfigError, match="training.num_steps"):
        cfg.replace("training", num_steps=0)
