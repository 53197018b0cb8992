"""The `numpy_batched` backend against the `numpy` and `python` backends: losses, parameters, batches, CLI."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("numba")

from conftest import run_cli, shared_file  # noqa: E402
from equivalence import alice_exp, names_exp  # noqa: E402,F401  (fixtures)
from equivalence import (assert_inference_matches_python, assert_short_and_long_documents_match_python,  # noqa: E402
                         assert_state_round_trips, assert_train_agree, make_backend, tiny_experiment,
                         train_cli_lines, assert_weight_decay_matches_python, assert_dropout_matches_python)
from golden.reference import assert_is_the_golden_run  # noqa: E402
from microgpt.backends import numpy_batched as nbm  # noqa: E402
from microgpt.backends.numpy_batched import NumpyBatchedBackend, pad_batch, split_evenly  # noqa: E402
from microgpt.errors import MicrogptError  # noqa: E402

RTOL, ATOL = 1e-10, 1e-15  # float64 against the numpy backend: the same sums in other orders


@pytest.fixture(scope="module")
def tiny_exp(names_exp):
    return tiny_experiment(names_exp)


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


def _loss_and_grad(be, docs, docs_in_step):
    """Each document's loss and the flat gradient of one padded batch of `docs`."""
    g = be._views(np.zeros_like(be.flat))
    losses = be.train_batches([docs], docs_in_step, g)
    return losses, np.concatenate([g[n].ravel() for n in be.names])


def test_gradient_matches_central_differences(tiny_exp):
    be = batched(tiny_exp, batch_size=3)
    by_length = sorted(tiny_exp.train_tokens, key=len)
    docs = [by_length[0], by_length[-1], by_length[len(by_length) // 2]]  # padded, cut at block_size, between
    assert min(len(d) for d in docs) - 1 < 6 < max(len(d) for d in docs) - 1

    def mean_loss():
        losses, _ = _loss_and_grad(be, docs, len(docs))
        return sum(losses) / len(losses)

    _, grad = _loss_and_grad(be, docs, len(docs))
    rng = np.random.default_rng(0)
    h = 1e-6
    for i in rng.choice(be.flat.size, 60, replace=False):
        old = be.flat[i]
        be.flat[i] = old + h
        up = mean_loss()
        be.flat[i] = old - h
        down = mean_loss()
        be.flat[i] = old
        assert grad[i] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9), i


@pytest.mark.parametrize("scenario", ["tiny", "alice"])
def test_padded_positions_contribute_nothing(request, monkeypatch, scenario):
    exp = request.getfixturevalue(f"{scenario}_exp")
    be = batched(exp, batch_size=4)
    T = exp.cfg.model.block_size
    by_length = sorted(exp.train_tokens, key=len)
    short = by_length[0] if scenario == "tiny" else by_length[0][:T // 3]  # alice's chunks are all full
    docs = [short, by_length[-1], by_length[len(by_length) // 2], short[:2]]  # n = 1 for the last
    inputs, _, lengths = pad_batch(docs, T, be.bos)
    assert len(set(lengths.tolist())) > 2 and inputs.shape[1] == max(lengths)  # three documents padded
    losses, together = _loss_and_grad(be, docs, len(docs))

    # what the padding holds reaches no loss and no gradient: other tokens there change no bit
    real_pad = nbm.pad_batch
    for pad in (0, be.vocab_size - 2):
        monkeypatch.setattr(nbm, "pad_batch", lambda d, t, _: real_pad(d, t, pad))
        again, grad = _loss_and_grad(be, docs, len(docs))
        assert again == losses
        np.testing.assert_array_equal(grad, together)
    monkeypatch.setattr(nbm, "pad_batch", real_pad)

    # and the batch is the mean of its documents, each trained alone (unpadded) as a step of its own
    alone = [_loss_and_grad(be, [d], 1) for d in docs]
    np.testing.assert_allclose(losses, [loss[0] for loss, _ in alone], rtol=1e-14)
    np.testing.assert_allclose(together, sum(grad for _, grad in alone) / len(docs), rtol=1e-12, atol=1e-16)


def test_two_threads_train_what_one_does(names_exp):
    # 16 documents a step, split 8 + 8 over two threads: each thread pads its own half, and the two
    # gradient buffers are summed. Not bit-identical to one thread (the sums over positions are
    # split, ~1e-12 apart after 10 steps), equal to rounding.
    one, two = batched(names_exp, 1, batch_size=16), batched(names_exp, 2, batch_size=16)
    assert (one.threads, two.threads) == (1, 2)
    losses = assert_train_agree(one, two, 10, RTOL, ATOL)
    assert len(set(losses)) == 10


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
    assert_inference_matches_python(tiny_exp, batched(tiny_exp), n_docs=40)  # 40 lengths in one padded batch


def test_eval_in_chunks_equals_one_by_one(alice_exp, monkeypatch):
    be = batched(alice_exp)
    docs = alice_exp.val_tokens[:7] + [alice_exp.val_tokens[-1][:20]]  # one short document among full ones
    monkeypatch.setattr(nbm, "EVAL_TOKENS", 3 * 128)  # 3 documents per forward
    assert be.eval_loss(docs) == pytest.approx(sum(be.doc_loss(d) for d in docs) / len(docs), rel=1e-13)


def test_state_round_trips_as_plain_lists(tiny_exp):
    assert_state_round_trips(tiny_exp, batched(tiny_exp, dtype="float32", batch_size=2))


def test_one_position_document_and_full_context():
    assert_short_and_long_documents_match_python("numpy_batched")


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


def test_cli_names_full_run_is_the_golden_run(tmp_path):
    # the whole 1000-step reference schedule (a shorter --steps would change the learning rate's horizon)
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", "numpy_batched", "--log-every", "1",
                 "-o", str(tmp_path / "m.json")])
    assert r.returncode == 0, r.stderr
    assert_is_the_golden_run(r.stdout)


@pytest.mark.slow
def test_cli_names_full_run_prints_the_python_backends_losses_and_samples(tmp_path):
    # the reference run: 1000 steps, seed 42 (~3 minutes, most of it the python backend);
    # scripts/check_reference.py --backend numpy_batched checks the same against tests/golden
    want = train_cli_lines(tmp_path, "python", 1000, timeout=1800)
    got = train_cli_lines(tmp_path, "numpy_batched", 1000, timeout=1800)
    assert sum(line.startswith("step ") for line in got) == 1000
    assert got == want


def test_cli_batch_size_flag_trains_batches(tmp_path):
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", "numpy_batched", "--dtype", "float32", "--steps", "5",
                 "--batch-size", "4", "--grad-accum", "2", "--num-samples", "2", "-o", str(tmp_path / "m.json")])
    assert r.returncode == 0, r.stderr
    assert re.search(r"numpy_batched \(float32\), 4 doc\(s\) x 2 accumulation", r.stdout)
    assert sum(line.startswith("sample ") for line in r.stdout.splitlines()) == 2


def test_weight_decay_matches_python(names_exp):
    assert_weight_decay_matches_python(names_exp, "numpy_batched")


def test_dropout_matches_python(names_exp):
    assert_dropout_matches_python(names_exp, "numpy_batched", grad_accum=2)
