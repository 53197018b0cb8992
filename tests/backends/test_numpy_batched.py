"""The `numpy_batched` backend against the `numpy` and `python` backends: losses, parameters, batches, CLI."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

pytest.importorskip("numba")

from conftest import run_cli, shared_file, tiny_config_dict  # noqa: E402
from equivalence import assert_train_agree, make_backend, weights_array  # noqa: E402
from microgpt.backends import numpy_batched as nbm  # noqa: E402
from microgpt.backends.numpy_batched import NumpyBatchedBackend, pad_batch, split_evenly  # noqa: E402
from microgpt.config import config_from_dict, load_scenario  # noqa: E402
from microgpt.errors import MicrogptError  # noqa: E402
from microgpt.experiment import prepare  # noqa: E402
from microgpt.params import init_weights, param_shapes  # noqa: E402

RTOL, ATOL = 1e-10, 1e-15  # float64 against the numpy backend: the same sums in other orders


@pytest.fixture(scope="module")
def names_exp():
    shared_file("names.txt")
    return prepare(load_scenario("names"), quiet=True)


@pytest.fixture(scope="module")
def alice_exp():
    shared_file("alice.txt")
    return prepare(load_scenario("alice"), quiet=True)


@pytest.fixture(scope="module")
def tiny_exp(names_exp):
    """A 2-layer relu2 model on the first names documents: fast enough for finite differences."""
    cfg = config_from_dict(tiny_config_dict(n_layer=2, activation="relu2", block_size=6))
    exp = prepare(cfg, dataset=names_exp.dataset, quiet=True)
    exp.train_tokens = exp.train_tokens[:64]
    return exp


def batched(exp, threads=None, dtype="float64", **training):
    cfg = exp.cfg.replace("training", dtype=dtype, **training)
    return NumpyBatchedBackend(cfg, exp.tokenizer.vocab_size, exp.weights, exp.train_tokens, threads=threads)


# -- the numpy backend, step by step ----------------------------------------------------


def test_names_ten_steps_match_the_numpy_backend(names_exp):
    assert_train_agree(make_backend(names_exp, "numpy"), batched(names_exp), 10, RTOL, ATOL)


def test_alice_three_steps_match_the_numpy_backend(alice_exp):
    # T = 128, two layers, relu2, zero-initialised projections, cosine schedule: the real scenario
    assert_train_agree(make_backend(alice_exp, "numpy"), batched(alice_exp), 3, RTOL, ATOL)


@pytest.mark.parametrize("threads", [1, 2])
def test_names_batch_equals_grad_accum_of_the_numpy_backend(names_exp, threads):
    # 8 documents of different lengths per step: padding to the longest must change nothing
    assert_train_agree(make_backend(names_exp, "numpy", grad_accum=8),
                       batched(names_exp, threads, batch_size=8), 5, RTOL, ATOL)


@pytest.mark.parametrize("threads", [1, 2])
def test_alice_batch_equals_grad_accum_of_the_numpy_backend(alice_exp, threads):
    assert_train_agree(make_backend(alice_exp, "numpy", grad_accum=4),
                       batched(alice_exp, threads, batch_size=4), 2, RTOL, ATOL)


def test_batch_with_grad_accum_equals_grad_accum_of_the_numpy_backend(names_exp):
    # B x G documents per step, the loss their mean
    assert_train_agree(make_backend(names_exp, "numpy", grad_accum=6),
                       batched(names_exp, 2, batch_size=3, grad_accum=2), 4, RTOL, ATOL)


# -- padding, batches, gradients --------------------------------------------------------


def test_gradient_matches_central_differences(tiny_exp):
    be = batched(tiny_exp, batch_size=3)
    by_length = sorted(tiny_exp.train_tokens, key=len)
    docs = [by_length[0], by_length[-1], by_length[len(by_length) // 2]]  # padded, cut at block_size, between
    assert min(len(d) for d in docs) - 1 < 6 < max(len(d) for d in docs) - 1

    def loss_and_grad():
        grads = be._views(np.zeros_like(be.flat))
        losses = be.train_batches([docs], len(docs), grads)
        return sum(losses) / len(losses), np.concatenate([grads[n].ravel() for n in be.names])

    _, grad = loss_and_grad()
    rng = np.random.default_rng(0)
    h = 1e-6
    for i in rng.choice(be.flat.size, 60, replace=False):
        old = be.flat[i]
        be.flat[i] = old + h
        up, _ = loss_and_grad()
        be.flat[i] = old - h
        down, _ = loss_and_grad()
        be.flat[i] = old
        assert grad[i] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9), i


def test_padding_contributes_nothing(tiny_exp):
    be = batched(tiny_exp, batch_size=4)
    docs = [tiny_exp.train_tokens[i] for i in (0, 1, 2, 3)]
    inputs, _, lengths = pad_batch(docs, 6, be.bos)
    assert len(set(lengths.tolist())) > 1 and inputs.shape[1] == max(lengths)  # some documents are padded
    together = be._views(np.zeros_like(be.flat))
    losses = be.train_batches([docs], 4, together)
    alone = be._views(np.zeros_like(be.flat))
    one_by_one = [be.train_batches([[d]], 4, alone)[0] for d in docs]  # adds into the same buffer
    np.testing.assert_allclose(losses, one_by_one, rtol=1e-14)
    for n in be.names:
        np.testing.assert_allclose(together[n], alone[n], rtol=1e-12, atol=1e-16, err_msg=n)


def test_batch_of_one_is_unpadded():
    inputs, targets, lengths = pad_batch([[5, 1, 2, 5]], block_size=8, pad=5)
    assert inputs.tolist() == [[5, 1, 2]] and targets.tolist() == [[1, 2, 5]] and lengths.tolist() == [3]
    inputs, targets, lengths = pad_batch([[5, 1, 2, 3, 4, 5]], block_size=3, pad=5)  # cut at the context
    assert inputs.tolist() == [[5, 1, 2]] and targets.tolist() == [[1, 2, 3]]


def test_loss_weights_average_documents_not_positions():
    w = nbm.loss_weights(np.array([1, 4]), 4, 2, np.float64)
    assert w.tolist() == [[0.5, 0, 0, 0], [0.125] * 4]


def test_a_document_without_a_target_is_an_error():
    with pytest.raises(MicrogptError, match="two tokens"):
        pad_batch([[3]], 8, 3)


def test_split_evenly():
    assert split_evenly(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert split_evenly([1], 2) == [[1], []]
    assert sum(split_evenly(list(range(16)), 3), []) == list(range(16))


def test_threads_are_capped_by_the_batch(names_exp):
    assert batched(names_exp, threads=2).threads == 1  # batch 1: the one-document path
    assert batched(names_exp, threads=2, batch_size=16).threads == 2
    assert batched(names_exp, threads=8, batch_size=3).threads == 3


# -- inference, state, dtype ------------------------------------------------------------


def test_eval_and_sampling_logits_match_python(tiny_exp):
    py, nb = make_backend(tiny_exp, "python"), batched(tiny_exp)
    docs = tiny_exp.train_tokens[:40]
    assert nb.doc_loss(docs[0]) == pytest.approx(py.doc_loss(docs[0]), rel=1e-12)
    assert nb.eval_loss(docs) == pytest.approx(py.eval_loss(docs), rel=1e-12)
    cache_py, cache_nb = py.new_cache(), nb.new_cache()
    for pos, tok in enumerate(docs[1][:6]):
        want, got = py.next_logits(cache_py, tok, pos), nb.next_logits(cache_nb, tok, pos)
        assert isinstance(got, list) and isinstance(got[0], float)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_eval_in_chunks_equals_one_by_one(alice_exp, monkeypatch):
    be = batched(alice_exp)
    docs = alice_exp.val_tokens[:7] + [alice_exp.val_tokens[-1][:20]]  # one short document among full ones
    monkeypatch.setattr(nbm, "EVAL_TOKENS", 3 * 128)  # 3 documents per forward
    assert be.eval_loss(docs) == pytest.approx(sum(be.doc_loss(d) for d in docs) / len(docs), rel=1e-13)


def test_state_round_trips_as_plain_lists(tiny_exp):
    be = batched(tiny_exp, dtype="float32", batch_size=2)
    be.train_steps(0, 2)
    w = be.get_weights()
    m, v = be.get_adam()
    shapes = param_shapes(tiny_exp.cfg.model, tiny_exp.tokenizer.vocab_size)
    for d in (w, m, v):
        assert list(d) == list(shapes)
        assert all(type(d[n]) is list and type(d[n][0][0]) is float and len(d[n]) == shapes[n][0] for n in shapes)
    again = NumpyBatchedBackend(be.cfg, tiny_exp.tokenizer.vocab_size, w, tiny_exp.train_tokens)
    again.set_adam(m, v)
    assert again.train_steps(2, 3) == be.train_steps(2, 3)  # resumed state continues identically


def test_one_position_document_and_full_context():
    cfg = config_from_dict(tiny_config_dict(block_size=4))
    V = 5
    w = init_weights(cfg.model, V, random.Random(1))
    py = make_backend_from(cfg, V, w, "python")
    nb = make_backend_from(cfg, V, w, "numpy_batched")
    for tokens in ([4, 4], [4, 0, 1, 2, 3, 0, 1, 4]):  # n = 1, and a document longer than the context
        assert nb.doc_loss(tokens) == pytest.approx(py.doc_loss(tokens), rel=1e-12)


def make_backend_from(cfg, V, weights, name):
    from microgpt.backends import get_backend_class

    return get_backend_class(name)(cfg, V, weights, [])


def test_float32_computes_in_float32_and_agrees_with_float64(names_exp, monkeypatch):
    seen = set()
    real = nbm.causal_attention_forward_fused

    def spy(q, k, v, n_head, parallel=None):
        out, att = real(q, k, v, n_head, parallel)
        seen.update(a.dtype for a in (q, k, v, out, att))
        return out, att

    monkeypatch.setattr(nbm, "causal_attention_forward_fused", spy)
    be = batched(names_exp, dtype="float32", batch_size=4)
    losses = be.train_steps(0, 10)
    assert seen == {np.dtype(np.float32)}
    assert all(a.dtype == np.float32 for a in (be.flat, be.m_flat, be.v_flat, *be.grad_flats))
    x, caches = be.forward(np.array([[0, 1, 2]]))
    arrays = [a for c in caches for a in c if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    assert x.dtype == np.float32 and arrays and all(a.dtype == np.float32 for a in arrays)
    want = batched(names_exp, batch_size=4).train_steps(0, 10)
    np.testing.assert_allclose(losses, want, rtol=1e-4)


# -- the command line -------------------------------------------------------------------


def _comparable(stdout: str) -> list[str]:
    """The CLI's lines minus what legitimately differs: backend name, compile and timing figures, paths."""
    lines = []
    for line in stdout.splitlines():
        if line.startswith(("backend:", "compiled in", "trained ", "saved ")):
            continue
        if line.startswith("step "):
            line = " | ".join(line.split(" | ")[:2])  # drop steps/s and ETA
        lines.append(line)
    return lines


def _train_cli(tmp_path, backend, steps, *extra):
    r = run_cli(["-m", "microgpt.train", "--backend", backend, "--steps", str(steps), "--log-every", "1",
                 "-o", str(tmp_path / f"{backend}.json"), *extra], timeout=1800)
    assert r.returncode == 0, r.stderr
    return _comparable(r.stdout)


def test_cli_names_30_steps_prints_the_python_backends_losses_and_samples(tmp_path):
    shared_file("names.txt")
    want = _train_cli(tmp_path, "python", 30)
    got = _train_cli(tmp_path, "numpy_batched", 30)
    assert sum(line.startswith("step ") for line in got) == 30
    assert sum(line.startswith("sample ") for line in got) == 20
    assert any(line.startswith("val loss") for line in got)
    assert got == want


@pytest.mark.slow
def test_cli_names_full_run_prints_the_python_backends_losses_and_samples(tmp_path):
    # the reference run: 1000 steps, seed 42 (~3 minutes, most of it the python backend)
    shared_file("names.txt")
    want = _train_cli(tmp_path, "python", 1000)
    got = _train_cli(tmp_path, "numpy_batched", 1000)
    assert sum(line.startswith("step ") for line in got) == 1000
    assert got == want


def test_cli_batch_size_flag_trains_batches(tmp_path):
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", "numpy_batched", "--dtype", "float32", "--steps", "5",
                 "--batch-size", "4", "--grad-accum", "2", "--num-samples", "2", "-o", str(tmp_path / "m.json")])
    assert r.returncode == 0, r.stderr
    assert re.search(r"numpy_batched \(float32\), 4 doc\(s\) x 2 accumulation", r.stdout)
    assert sum(line.startswith("sample ") for line in r.stdout.splitlines()) == 2
