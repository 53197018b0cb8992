"""scripts/benchmark_train.py: any configuration (a scenario, a user's file, sizes set by flags) is timed and
recorded with what was timed; bad input is one line."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from conftest import ROOT, run_cli, shared_file, tiny_config_dict
from microgpt.config import SIZE_KEYS, load_scenario, sizes_of, with_sizes
from microgpt.errors import ConfigError

SCRIPT = os.path.join(ROOT, "scripts", "benchmark_train.py")


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(tmp_path, **changes):
    d = tiny_config_dict()
    for section, keys in changes.items():
        d[section].update(keys)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(d))
    return str(path)


def fails_in_one_line(capsys, argv, fragment):
    assert load_script().main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("flags, fragment", [
    # both flags named, and what to give instead
    (["--n-embd", "30", "--n-head", "4"], "--n-embd 30 is not divisible by --n-head 4"),
    (["--n-embd", "30", "--n-head", "4"], "give an --n-head that divides 30 (1, 2, 3, 5, 6, 10, 15, 30), or an "
                                          "--n-embd that is a multiple of 4"),
    # a huge width answers at once, with the dozen smallest head counts
    (["--n-embd", str(3 * 2**40), "--n-head", "7"], f"divides {3 * 2**40} (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)"),
    # a value from the scenario is named as the scenario's, not as a flag that was never given
    (["--n-embd", "30"], "--n-embd 30 is not divisible by n_head 4 of scenario names"),
    (["--n-head", "5"], "n_embd 16 of scenario names is not divisible by --n-head 5"),
    # as training words them, and never blamed on the scenario's file
    (["--n-layer", "0"], "error: --n-layer must be >= 1, got 0\n"),
    (["--block-size", "-3"], "error: --block-size must be >= 1, got -3\n"),
    (["--batch-size", "0"], "error: --batch-size must be >= 1, got 0\n"),
    (["--grad-accum", "0"], "error: --grad-accum must be >= 1, got 0\n"),
    (["--steps", "0"], "error: --steps must be >= 1, got 0\n"),
    (["--chunk", "0"], "error: --chunk must be >= 1, got 0\n"),
    (["--warmup", "-1"], "error: --warmup must be >= 0, got -1\n"),
    (["--scenario", "nope"], "unknown scenario 'nope'"),
    (["--steps", "5000"], "exceeds the run of scenario names (1000 steps)"),
])
def test_bad_sizes_and_scenarios_are_one_line(capsys, flags, fragment):
    fails_in_one_line(capsys, ["--backend", "python", "--steps", "2", *flags], fragment)  # a later --steps wins


def test_bad_config_files_name_the_file_and_the_key(tmp_path, capsys):
    missing = str(tmp_path / "absent.json")
    fails_in_one_line(capsys, ["--config", missing], f"{missing}: no such config file")
    path = write_config(tmp_path, model={"width": 8})
    fails_in_one_line(capsys, ["--config", path], f"{path}: model.width: unknown key")
    path = write_config(tmp_path, model={"n_embd": 9, "n_head": 2})
    fails_in_one_line(capsys, ["--config", path], f"{path}: model.n_head: n_embd (9) must be divisible by n_head (2)")
    # the file's n_head, named as the file's, against a flag
    path = write_config(tmp_path)
    fails_in_one_line(capsys, ["--config", path, "--n-embd", "9"], f"--n-embd 9 is not divisible by n_head 2 of {path}")


def test_scenario_and_config_together_are_refused_as_training_refuses_them(tmp_path):
    r = run_cli([SCRIPT, "--scenario", "names", "--config", write_config(tmp_path)])
    train = run_cli(["-m", "microgpt.train", "--scenario", "names", "--config", write_config(tmp_path)])
    assert r.returncode == train.returncode == 2
    assert "argument --config: not allowed with argument --scenario" in r.stderr.splitlines()[-1]


def test_help_explains_each_size_flag_and_what_it_overrides():
    text = load_script().build_parser().format_help()
    for flag in ("--config PATH", "--n-embd C", "--n-head H", "--n-layer L", "--block-size T", "--batch-size B"):
        assert flag in text
    for fragment in ("overrides model.n_embd", "overrides training.batch_size", "--scenario or --config file",
                     "chunk_size T", "model.n_embd = 16"):  # the last: the config keys, as training's help lists
        assert fragment in " ".join(text.split()), fragment


def test_a_users_config_with_sizes_set_by_flags_is_timed_and_recorded(tmp_path):
    shared_file("names.txt")
    config = write_config(tmp_path, training={"num_steps": 50, "backend": "numpy"})
    out = tmp_path / "bench.json"
    # the python backend: no compile, so the test costs a second; --backend overrides the file's numpy
    r = run_cli([SCRIPT, "--config", config, "--backend", "python", "--steps", "4", "--warmup", "1",
                 "--n-embd", "12", "--n-head", "3", "--block-size", "6", "--batch-size", "2", "--json", str(out)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("tiny 12/3/1/6 (C/H/L/T, 4 set by flags) / python (float64, batch 2 x accum 1)")
    d = json.loads(out.read_text())
    assert d["config_source"] == {"file": os.path.abspath(config)}
    assert d["size_overrides"] == {"n_embd": 12, "n_head": 3, "block_size": 6, "batch_size": 2}
    assert d["sizes"] == {"n_embd": 12, "n_head": 3, "n_layer": 1, "block_size": 6, "batch_size": 2}
    assert d["config"]["model"]["n_embd"] == 12 and d["config"]["training"]["num_steps"] == 50
    assert d["backend"] == "python" and d["timed_steps"] == 3 and d["full_run_steps"] == 50


def test_without_flags_the_config_is_recorded_as_it_is(tmp_path):
    shared_file("names.txt")
    out = tmp_path / "bench.json"
    assert load_script().main(["--backend", "python", "--steps", "2", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["config_source"] == {"scenario": "names"} and d["size_overrides"] == {}
    names = load_scenario("names")
    assert d["sizes"] == sizes_of(names) and d["config"]["model"] == names.to_dict()["model"]
    assert d["config"]["training"]["backend"] == "python"  # --backend is in the effective config


def test_with_sizes_changes_only_the_sizes_given_and_chunks_follow_the_context():
    alice = load_scenario("alice")
    assert with_sizes(alice, {}) == alice
    bigger = with_sizes(alice, {"block_size": 256, "batch_size": 16})
    assert sizes_of(bigger) == {**sizes_of(alice), "block_size": 256, "batch_size": 16}
    # every position of a 256 context is trained only if the chunks are as long
    assert (bigger.data.chunk_size, bigger.data.chunk_overlap) == (256, 128)
    wider = with_sizes(alice, {"n_embd": 64})
    assert wider.data == alice.data and wider.model.n_embd == 64 and wider.training == alice.training
    with pytest.raises(ConfigError, match="n_embd"):  # validated as a loaded config is
        with_sizes(alice, {"n_embd": 30})
    assert SIZE_KEYS == ("n_embd", "n_head", "n_layer", "block_size", "batch_size")


def test_the_scale_sweep_sizes_its_points_with_the_same_function(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "scripts"))  # imported by name: its dataclass needs a module
    sweep = importlib.import_module("scale_sweep")
    p = sweep.Point("t", "alice", 64, 4, 2, 256, 16, "numpy", "float32", 1)
    cfg = sweep.point_config(p)
    assert cfg.model == with_sizes(load_scenario("alice"), {"n_embd": 64, "block_size": 256}).model
    assert sizes_of(cfg) == {"n_embd": 64, "n_head": 4, "n_layer": 2, "block_size": 256, "batch_size": 16}
    assert cfg.data.chunk_size == 256 and cfg.training.dtype == "float32"
