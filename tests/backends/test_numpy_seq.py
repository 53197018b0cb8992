"""The `numpy` backend against the python backend: losses, parameters, gradients, CLI output."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("numba")

from conftest import run_cli, shared_file  # noqa: E402
from equivalence import names_exp  # noqa: E402,F401  (fixtures)
from equivalence import (assert_inference_matches_python, assert_short_and_long_documents_match_python,  # noqa: E402
                         assert_state_round_trips, assert_train_agree, make_backend, tiny_experiment,
                         weights_array, assert_weight_decay_matches_python, assert_dropout_matches_python)
from golden.reference import assert_is_the_golden_run  # noqa: E402
from microgpt.backends.numpy_seq import compiled_kernels  # noqa: E402
from microgpt.config import config_from_dict  # noqa: E402
from microgpt.experiment import prepare  # noqa: E402


@pytest.fixture(scope="module")
def names_reference(names_exp):
    """The python backend's first 10 names steps: losses and the weights after them."""
    ref = make_backend(names_exp, "python")
    return ref.train_steps(0, 10), weights_array(ref)


@pytest.mark.parametrize("dtype,rtol,atol", [("float64", 1e-9, 1e-15), ("float32", 1e-4, 1e-6)])
def test_names_first_ten_steps_match_python(names_exp, names_reference, dtype, rtol, atol):
    losses, weights = names_reference
    cand = make_backend(names_exp, "numpy", dtype=dtype)
    assert cand.theta.dtype == np.dtype(dtype)
    assert_train_agree(None, cand, 10, rtol, atol, ref_losses=losses, ref_weights=weights)


def alice_style_config(n_embd=16):
    """alice's design (H 4, L 2, relu2, zero-init projections, cosine, Adam betas) with T 16, on real chunks."""
    return config_from_dict({
        "name": "alice_short",
        "data": {"file": "alice.txt", "format": "chunks", "gutenberg": True, "chunk_size": 64, "chunk_overlap": 32},
        "model": {"n_embd": n_embd, "n_head": 4, "n_layer": 2, "block_size": 16, "activation": "relu2",
                  "init_std": 0.02, "zero_init_proj": True},
        "training": {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.95, "schedule": "cosine", "num_steps": 2},
        "sampling": {"num_samples": 0}})


@pytest.mark.parametrize("n_embd", [16, pytest.param(32, marks=pytest.mark.slow)])
def test_alice_style_steps_match_python(n_embd):
    shared_file("alice.txt")
    exp = prepare(alice_style_config(n_embd), quiet=True)
    # two steps: the first only trains the zero-initialised projections' side of the graph
    assert_train_agree(make_backend(exp, "python"), make_backend(exp, "numpy"), 2, rtol=1e-9, atol=1e-15)


@pytest.fixture(scope="module")
def tiny_exp(names_exp):
    return tiny_experiment(names_exp)


def test_gradient_matches_central_differences(tiny_exp):
    be = make_backend(tiny_exp, "numpy")
    docs = tiny_exp.train_tokens[:2]  # one shorter and one cut at block_size: both paths
    be.gradient(docs)
    grad = be.grad.copy()
    rng = np.random.default_rng(0)
    h = 1e-6
    for i in rng.choice(be.theta.size, 60, replace=False):
        old = be.theta[i]
        be.theta[i] = old + h
        up = be.gradient(docs)
        be.theta[i] = old - h
        down = be.gradient(docs)
        be.theta[i] = old
        assert grad[i] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9), i


def test_grad_accumulation_is_the_average_of_single_document_gradients(tiny_exp):
    single = make_backend(tiny_exp, "numpy")
    docs = tiny_exp.train_tokens[:3]
    expected_loss, expected_grad = 0.0, np.zeros_like(single.theta)
    for d in docs:
        expected_loss += single.gradient([d]) / 3
        expected_grad += single.grad / 3
    for training in ({"grad_accum": 3}, {"batch_size": 3}):
        be = make_backend(tiny_exp, "numpy", **training)
        loss = be.train_steps(0, 1)[0]  # step 0 takes documents 0, 1, 2
        assert loss == pytest.approx(expected_loss, rel=1e-13)
        np.testing.assert_allclose(be.grad, expected_grad, rtol=1e-12, atol=1e-15)


def test_grad_accumulation_matches_python(tiny_exp):
    assert_train_agree(make_backend(tiny_exp, "python", grad_accum=2), make_backend(tiny_exp, "numpy", grad_accum=2),
                       3, rtol=1e-9, atol=1e-15)


def test_eval_and_sampling_logits_match_python(tiny_exp):
    assert_inference_matches_python(tiny_exp, make_backend(tiny_exp, "numpy"), n_docs=5)


def test_parallel_attention_path_matches_the_serial_one(tiny_exp, monkeypatch):
    serial = make_backend(tiny_exp, "numpy")
    parallel = make_backend(tiny_exp, "numpy")
    monkeypatch.setattr(parallel, "_parallel_from", lambda: 1)  # positions >= 1 through the prange kernels
    assert_train_agree(serial, parallel, 3, rtol=1e-13, atol=1e-16)
    assert compiled_kernels()["attention_forward_parallel_into"] >= 1
    assert compiled_kernels()["attention_backward_parallel_into"] >= 1


def test_state_round_trips_as_plain_lists(tiny_exp):
    assert_state_round_trips(tiny_exp, make_backend(tiny_exp, "numpy", dtype="float32"))


def test_one_position_document_and_full_context():
    assert_short_and_long_documents_match_python("numpy")


def test_cli_names_full_run_is_the_golden_run(tmp_path):
    # the whole 1000-step reference schedule (a shorter --steps would change the learning rate's horizon): ~3 s
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", "numpy", "--log-every", "1", "-o", str(tmp_path / "m.json")])
    assert r.returncode == 0, r.stderr
    assert_is_the_golden_run(r.stdout)


def test_verify_jit_env_reports_compiled_kernels(tiny_exp, monkeypatch, capsys):
    monkeypatch.setenv("MICROGPT_VERIFY_JIT", "1")
    be = make_backend(tiny_exp, "numpy")
    be.train_steps(0, 2)
    err = capsys.readouterr().err
    assert err.count("numba JIT") == 1  # once, on the first step
    assert re.search(r"position_forward: numba, \d+ signature", err)
    assert re.search(r"position_backward: numba, \d+ signature", err)


def test_float32_backend_computes_in_float32(tiny_exp):
    be = make_backend(tiny_exp, "numpy", dtype="float32")
    be.train_steps(0, 1)
    assert all(a.dtype == np.float32 for a in (be.theta, be.grad, be.m, be.v, *be.acts.bufs))


def test_verify_numba_jit_script_passes_and_fails_when_jit_is_disabled():
    ok = run_cli(["scripts/verify_numba_jit.py"])
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"^JIT verification: numba JIT active \(\d+ compiled\)$", ok.stdout, re.M)
    off = run_cli(["scripts/verify_numba_jit.py"], env={"NUMBA_DISABLE_JIT": "1"})
    assert off.returncode == 1
    assert "JIT verification: FAILED" in off.stdout


def test_benchmark_script_reports_and_writes_json(tmp_path):
    import json

    shared_file("names.txt")
    path = tmp_path / "bench.json"
    r = run_cli(["scripts/benchmark_train.py", "--scenario", "names", "--backend", "numpy", "--steps", "25",
                 "--warmup", "5", "--batch-size", "2", "--json", str(path)], env={"NUMBA_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    for text in ("steps/s (median)", "tokens/s", "full run estimate", "compile (not counted)", "p10 / p50 / p90"):
        assert text in r.stdout
    d = json.loads(path.read_text())
    assert d["timed_steps"] == 20 and d["batch_size"] == 2 and len(d["tenths"]) == 10
    assert d["steps_per_s"] == pytest.approx(1 / d["median_step_s"])
    assert all(p["p10"] <= p["p50"] <= p["p90"] for p in d["tenths"])
    assert d["metadata"]["threads"]["env"]["NUMBA_NUM_THREADS"] == "1"
    assert d["metadata"]["versions"]["numba"] and "numba_threading_layer" in d
    bad = run_cli(["scripts/benchmark_train.py", "--scenario", "names", "--steps", "5000"])
    assert bad.returncode == 1 and "exceeds" in bad.stderr


def test_weight_decay_matches_python(names_exp):
    assert_weight_decay_matches_python(names_exp, "numpy")


def test_dropout_matches_python(names_exp):
    assert_dropout_matches_python(names_exp, "numpy", grad_accum=2)
