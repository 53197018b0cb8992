"""The `fused` backend against `numpy_batched` and the reference run: losses, parameters, threads, the batch
path (k > 1 documents a step), CLI.

float64 is held to numpy_batched at 1e-10 relative on every loss and every
parameter; the CLI's names run to the python backend's printed losses and
samples (tests/golden). The fused backend compiles its kernels once into
Numba's disk cache, so a run here mostly loads them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random

import numpy as np
import pytest

pytest.importorskip("numba")

from conftest import ROOT, run_cli, shared_file  # noqa: E402
from equivalence import alice_exp, names_exp  # noqa: E402,F401  (fixtures)
from equivalence import (assert_inference_matches_python, assert_samples_agree,  # noqa: E402
                         assert_short_and_long_documents_match_python, assert_state_round_trips, assert_train_agree,
                         assert_weights_close, make_backend, tiny_experiment, train_cli_lines, weights_array,
                         assert_weight_decay_matches_python, assert_dropout_matches_python)
from golden.reference import NAMES_SEED42, assert_is_the_golden_run, printed_samples  # noqa: E402
from microgpt import checkpoint  # noqa: E402
from microgpt.backends import fused as fm  # noqa: E402
from microgpt.backends import get_backend_class  # noqa: E402
from microgpt.backends.registry import resolve_name  # noqa: E402
from microgpt.errors import MicrogptError  # noqa: E402
from microgpt.experiment import prepare  # noqa: E402
from microgpt.kernels import fused_batch  # noqa: E402
from microgpt.sampling import sample  # noqa: E402
from microgpt.sampling_math import next_token  # noqa: E402
from microgpt.schedule import learning_rate, step_doc_indices  # noqa: E402
from microgpt.train import make_checkpoint  # noqa: E402

RTOL, ATOL = 1e-10, 1e-15  # float64 against numpy_batched: the same sums, some in other orders


def fused(exp, dtype="float64", **training):
    return make_backend(exp, "fused", dtype, **training)


def batched(exp, dtype="float64", **training):
    return make_backend(exp, "numpy_batched", dtype, **training)


# -- float64: the same numbers as numpy_batched ----------------------------------------------


def test_names_50_steps_match_numpy_batched(names_exp):
    assert_train_agree(batched(names_exp), fused(names_exp), 50, RTOL, ATOL)


def test_alice_5_steps_match_numpy_batched(alice_exp):
    # the real scenario: T = 128, 2 layers, relu2, zero-initialised projections, cosine schedule, trailing BOS
    cfg = alice_exp.cfg
    assert (cfg.model.n_layer, cfg.model.activation, cfg.model.zero_init_proj, cfg.training.schedule,
            cfg.data.trailing_bos) == (2, "relu2", True, "cosine", True)
    assert_train_agree(batched(alice_exp), fused(alice_exp), 5, RTOL, ATOL)


@pytest.mark.parametrize("trailing_bos", [True, False])
def test_alice_shaped_short_context_matches_numpy_batched(alice_exp, trailing_bos):
    # T = 40 < the documents' 129 positions: every document is cut at the context; and alice_v2's documents
    exp = prepare(alice_exp.cfg.replace("model", block_size=40).replace("data", trailing_bos=trailing_bos),
                  dataset=alice_exp.dataset, quiet=True)
    assert all(len(d) == 129 + trailing_bos for d in exp.train_tokens[:10])
    assert_train_agree(batched(exp), fused(exp), 5, RTOL, ATOL)


@pytest.mark.parametrize("batch_size, grad_accum", [(3, 1), (1, 5), (4, 3)])
def test_names_batches_and_accumulation_match_numpy_batched(names_exp, batch_size, grad_accum):
    # 3 and 5 documents; 12: more documents than groups, dealt to them in contiguous blocks
    assert_train_agree(batched(names_exp, batch_size=batch_size, grad_accum=grad_accum),
                       fused(names_exp, batch_size=batch_size, grad_accum=grad_accum), 6, RTOL, ATOL)


def test_alice_batch_with_accumulation_matches_numpy_batched(alice_exp):
    cand = fused(alice_exp, batch_size=2, grad_accum=2)
    # 4 x 128 positions: enough work for batch_loop_threads wherever Numba has two threads (this process's default)
    assert cand._use_threads() == (fm.numba.get_num_threads() > 1)
    assert_train_agree(batched(alice_exp, batch_size=2, grad_accum=2), cand, 2, RTOL, ATOL)


def test_step_on_given_documents_matches_numpy_batched(names_exp):
    # the base interface: documents and learning rate from outside (a constant-rate compiled step)
    ref, cand = batched(names_exp, batch_size=2), fused(names_exp, batch_size=2)
    t = names_exp.cfg.training
    for s in range(3):
        docs = [names_exp.train_tokens[i] for i in step_doc_indices(s, 2, len(names_exp.train_tokens))]
        lr = learning_rate(s, t)
        assert cand.step(docs, lr, s) == pytest.approx(ref.step(docs, lr, s), rel=RTOL)
    np.testing.assert_allclose(cand.w, ref.flat, rtol=RTOL, atol=ATOL)


# -- float32 --------------------------------------------------------------------------------


def test_float32_computes_in_float32_and_stays_close_to_float64(alice_exp):
    f32 = fused(alice_exp, "float32", batch_size=2)
    losses = f32.train_steps(0, 10)
    assert all(a.dtype == np.float32 for a in (f32.w, f32.wT, f32.m, f32.v, f32.grad, f32.slot_grads, *f32.acts))
    f64 = fused(alice_exp, batch_size=2)
    want = f64.train_steps(0, 10)
    np.testing.assert_allclose(losses, want, rtol=1e-4)
    np.testing.assert_allclose(f32.w, f64.w, rtol=0, atol=2e-4)  # ten Adam steps of at most lr = 0.01 each
    assert f32.eval_loss(alice_exp.val_tokens[:20]) == pytest.approx(f64.eval_loss(alice_exp.val_tokens[:20]),
                                                                      rel=1e-4)


# -- inference: validation loss, KV cache, sampling ----------------------------------------


@pytest.fixture(scope="module")
def alice_trained(alice_exp):
    """numpy_batched and fused after the same 3 alice steps (the zero-initialised projections are no longer 0)."""
    ref, cand = batched(alice_exp), fused(alice_exp)
    ref.train_steps(0, 3)
    cand.train_steps(0, 3)
    return ref, cand


def test_validation_loss_equals_numpy_batched(alice_exp, alice_trained):
    ref, cand = alice_trained
    val = alice_exp.val_tokens
    assert len(val) > 100 and len({len(d) for d in val}) > 1  # a short last chunk among full ones
    assert cand.eval_loss(val) == pytest.approx(ref.eval_loss(val), rel=1e-12)
    for d in (val[0], val[-1]):
        assert cand.doc_loss(d) == pytest.approx(ref.doc_loss(d), rel=1e-12)


def test_next_logits_equal_the_sequence_forward_of_numpy_batched(alice_exp, alice_trained):
    ref, cand = alice_trained
    tokens = alice_exp.val_tokens[0][:128]  # the whole context
    x, _ = ref.forward(np.array([tokens]))
    want = x[0] @ ref.w["lm_head"].T  # (T, V): every position at once, causal mask
    cache = cand.new_cache()
    got = [cand.next_logits(cache, tok, pos) for pos, tok in enumerate(tokens)]
    assert isinstance(got[0], list) and type(got[0][0]) is float
    np.testing.assert_allclose(np.array(got), want, rtol=1e-12, atol=1e-14)


def test_inference_matches_python_on_a_tiny_model(names_exp):
    tiny = tiny_experiment(names_exp)
    assert_inference_matches_python(tiny, fused(tiny), 20)


def test_short_and_long_documents_match_python():
    assert_short_and_long_documents_match_python("fused")


def test_samples_equal_numpy_batcheds(alice_exp, alice_trained):
    ref, cand = alice_trained
    assert_samples_agree(ref, cand, seed=3, num=3, temperature=0.8)
    assert_samples_agree(ref, cand, seed=4, num=2, temperature=0)  # greedy


def test_sampling_uses_the_compiled_sampler(alice_trained, monkeypatch):
    _, cand = alice_trained
    python_draws = []
    monkeypatch.setattr(fm, "next_token", lambda *a: python_draws.append(a) or next_token(*a))
    ids = sample(cand, random.Random(0), [], 0.8)
    assert ids and python_draws == []
    sample(cand, random.Random(0), [], 0)  # greedy decoding stays in Python
    assert python_draws


def _logit_cases():
    rng = np.random.default_rng(7)
    for i in range(300):
        V = int(rng.integers(2, 100))
        scale = [1e-3, 1.0, 10.0, 300.0][i % 4]
        logits = rng.normal(0, scale, V)
        if i % 5 == 0:
            logits[rng.integers(0, V, 3)] = logits.max()  # ties at the top
        yield logits.astype(np.float32 if i % 2 else np.float64), [0.5, 1.0, 0.8, 1e-3, 3.0, 1e-200][i % 6]


def test_compiled_draw_is_sampling_next_tokens_draw():
    exps = np.zeros(100)
    for case, (logits, temperature) in enumerate(_logit_cases()):
        rng_py, rng_fused = random.Random(case), random.Random(case)
        want = next_token(logits.tolist(), temperature, rng_py)
        got = fm.sample_token(logits, exps[:logits.size], temperature, rng_fused)
        assert got == want, (case, temperature)
        assert rng_fused.getstate() == rng_py.getstate(), case


def test_sampling_edge_cases_go_through_sampling():
    exps = np.zeros(3)
    logits = np.array([1.0, 3.0, 3.0])
    assert fm.sample_token(logits, exps, 0, random.Random(0)) == 1  # greedy: the first largest, no draw
    for temperature in (5e-324, 1e-310):  # the scale overflows: sampling's safe softmax picks a top logit
        assert fm.sample_token(logits, exps, temperature, random.Random(0)) in (1, 2)
    with pytest.raises(MicrogptError, match="not a finite number"):
        fm.sample_token(np.array([0.0, math.nan, 1.0]), exps, 0.5, random.Random(0))
    with pytest.raises(MicrogptError, match="temperature"):
        fm.sample_token(logits, exps, math.inf, random.Random(0))


# -- state -----------------------------------------------------------------------------------


def test_state_round_trips_as_plain_lists(names_exp):
    assert_state_round_trips(names_exp, fused(names_exp, batch_size=2))


@pytest.mark.parametrize("dropout", [0.0, 0.2])  # the masks follow the step: a resumed run draws the same
def test_checkpoint_round_trip_resumes_exactly(names_exp, tmp_path, dropout):
    be = fused(names_exp, dropout=dropout)
    be.train_steps(0, 5)
    path = str(tmp_path / "model.json")
    checkpoint.save(path, make_checkpoint(dataclasses.replace(names_exp, cfg=be.cfg), be, 5))
    ck = checkpoint.load(path)
    assert ck.backend == "fused" and ck.train_state["step"] == 5
    resumed = {}
    for name in ("fused", "numpy_batched"):  # every backend reads the same file
        resumed[name] = get_backend_class(name)(ck.config, ck.vocab_size, ck.weights, names_exp.train_tokens)
        resumed[name].set_adam(ck.train_state["adam_m"], ck.train_state["adam_v"])
    again = resumed["fused"]
    assert all(np.array_equal(x, y) for x, y in ((again.w, be.w), (again.wT, be.wT), (again.m, be.m), (again.v, be.v)))
    want = be.train_steps(5, 5)
    assert again.train_steps(5, 5) == want  # the run continues exactly
    np.testing.assert_allclose(resumed["numpy_batched"].train_steps(5, 5), want, rtol=RTOL)
    assert_weights_close(weights_array(resumed["numpy_batched"]), weights_array(again), RTOL, ATOL)


# -- errors ------------------------------------------------------------------------------------


def test_a_document_without_a_target_is_an_error(names_exp):
    with pytest.raises(MicrogptError, match="document 1 has 1 token"):
        fm.pack_docs([[26, 0, 26], [26]], 27)
    with pytest.raises(MicrogptError, match="at least 2"):
        fm.FusedBackend(names_exp.cfg, 27, names_exp.weights, [[26, 1, 26], []])
    with pytest.raises(MicrogptError, match=r"token ids must be in 0\.\.26"):
        fm.pack_docs([[26, 27]], 27)


def test_step_needs_its_number_of_documents(names_exp):
    be = fused(names_exp, batch_size=2, grad_accum=2)
    with pytest.raises(MicrogptError, match=r"built for 4 document\(s\) per step, got 3"):
        be.step(names_exp.train_tokens[:3], 0.01, 0)


def test_kv_cache_and_training_misuse_are_errors(names_exp):
    be = fused(names_exp)
    cache = be.new_cache()
    with pytest.raises(MicrogptError, match="outside the context"):
        be.next_logits(cache, 0, 16)
    with pytest.raises(MicrogptError, match="skips positions 0..1"):
        be.next_logits(cache, 0, 2)
    with pytest.raises(MicrogptError, match="not in the vocabulary"):
        be.next_logits(cache, 27, 0)
    empty = fm.FusedBackend(names_exp.cfg, 27, names_exp.weights, [])
    with pytest.raises(MicrogptError, match="no training documents"):
        empty.train_steps(0, 1)
    assert empty.train_steps(0, 0) == []


def test_compile_runs_once(names_exp):
    be = fused(names_exp, batch_size=2)
    assert be.compile() >= 0 and be.compile() == 0.0
    assert be.train_steps(0, 1) == fused(names_exp, batch_size=2).train_steps(0, 1)  # the probe changed nothing


def test_compile_covers_the_threaded_loop(names_exp, monkeypatch):
    # its compile time would otherwise land in the first timed steps
    seen = []
    real = fm.fused_batch.batch_loop_threads
    monkeypatch.setattr(fm.fused_batch, "batch_loop_threads", lambda *a: seen.append(a[0].dtype) or real(*a))
    monkeypatch.setattr(fm.numba, "get_num_threads", lambda: 2)
    assert fused(names_exp, batch_size=40).compile() > 0 and seen == [np.dtype(np.float64)]


# -- threads: the result does not depend on the thread count -----------------------------------

THREAD_RUN = """
import json, sys
sys.path[:0] = [{tests!r}, {backends!r}]
import numba
from equivalence import flat_digest, make_backend, scenario_experiment
out = {{"threads": numba.get_num_threads()}}
for name, batch, accum, steps in (("names", 20, 2, 4), ("alice", 4, 3, 3)):
    be = make_backend(scenario_experiment(name), "fused", batch_size=batch, grad_accum=accum)
    losses = be.train_steps(0, steps)
    out[name] = {{"parallel": be._use_threads(), "losses": losses, "digest": flat_digest(be.w, be.m, be.v)}}
print(json.dumps(out))
"""


def _train_with_threads(n: int) -> dict:
    code = THREAD_RUN.format(tests=os.path.join(ROOT, "tests"), backends=os.path.join(ROOT, "tests", "backends"))
    r = run_cli(["-c", code], env={"NUMBA_NUM_THREADS": str(n), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def test_one_and_two_threads_give_the_same_weights_bit_for_bit():
    shared_file("names.txt")
    shared_file("alice.txt")
    one, two = _train_with_threads(1), _train_with_threads(2)
    assert one["threads"] == 1 and two["threads"] == 2
    for name in ("names", "alice"):
        # 40 and 12 documents per step: 8 gradient slots, enough work for the prange path with 2 threads
        assert not one[name]["parallel"] and two[name]["parallel"], name
        assert two[name]["losses"] == one[name]["losses"], name
        assert two[name]["digest"] == one[name]["digest"], name


def test_twelve_documents_a_step_give_the_same_weights_on_the_threaded_loop(alice_exp):
    # k = 12 split into groups of contiguous documents (slot_docs): the threaded loop, which hands each thread
    # a run of groups, must do exactly the serial loop's arithmetic
    serial, threaded = fused(alice_exp, batch_size=12), fused(alice_exp, batch_size=12)
    assert serial.groups > 1  # 12 x 128 positions: more than one group, so there is something to share out
    steps = [(0, 1), (1, 1)]
    a = [serial._run(serial.tokens, serial.offsets, s, n, serial.hyper, threads=False) for s, n in steps]
    b = [threaded._run(threaded.tokens, threaded.offsets, s, n, threaded.hyper, threads=True) for s, n in steps]
    assert a == b
    for x, y in ((serial.w, threaded.w), (serial.m, threaded.m), (serial.v, threaded.v)):
        assert np.array_equal(x, y)


def test_the_thread_path_needs_enough_work(names_exp, monkeypatch):
    monkeypatch.setattr(fm.numba, "get_num_threads", lambda: 2)
    assert not fused(names_exp)._use_threads()  # one document per step: no slots to share out
    assert not fused(names_exp, batch_size=4)._use_threads()  # 4 x 16 x 4192 multiply-adds: too little
    assert fused(names_exp, batch_size=40)._use_threads()
    monkeypatch.setattr(fm.numba, "get_num_threads", lambda: 1)
    assert not fused(names_exp, batch_size=40)._use_threads()


# -- the batch path (k > 1): kernels/fused_batch.py against numpy_batched, serial against threaded ----------
#
# Every step with more than one document goes through each layer as one matrix product per group of
# documents; float64 is held to numpy_batched at RTOL on every loss and every parameter, with one group
# and several, with gradient accumulation, and on a wider model.


def _pair(exp, **training):
    return batched(exp, **training), fused(exp, **training)


@pytest.mark.parametrize("batch_size, grad_accum", [(1, 1), (3, 1), (12, 1), (16, 1), (4, 3), (20, 2)])
def test_names_batches_match_numpy_batched(names_exp, batch_size, grad_accum):
    ref, cand = _pair(names_exp, batch_size=batch_size, grad_accum=grad_accum)
    assert_train_agree(ref, cand, 6, RTOL, ATOL)


@pytest.mark.parametrize("batch_size, grad_accum", [(16, 1), (3, 2)])
def test_alice_batches_match_numpy_batched(alice_exp, batch_size, grad_accum):
    ref, cand = _pair(alice_exp, batch_size=batch_size, grad_accum=grad_accum)
    assert cand.groups > 1
    assert_train_agree(ref, cand, 3, RTOL, ATOL)


def test_a_wider_model_in_two_groups_matches_numpy_batched(alice_exp):
    # C = 64, 8 documents of 64 positions: 2 groups of 256 rows
    cfg = alice_exp.cfg.replace("model", n_embd=64, n_head=4, n_layer=1, block_size=64)
    exp = prepare(cfg, dataset=alice_exp.dataset, quiet=True)
    ref, cand = _pair(exp, batch_size=8)
    assert cand.groups == 2
    assert_train_agree(ref, cand, 3, RTOL, ATOL)


def test_many_documents_a_group_go_through_in_passes_of_bounded_memory(alice_exp):
    # 32 documents of 128 positions: 8 groups of 4, each in 2 passes of 2 documents (GROUP_ROWS = 256 positions)
    ref, cand = _pair(alice_exp, batch_size=4, grad_accum=8)
    assert cand.groups == 8 and cand.batch.docs.shape[1] == 2 and cand.batch.emb.shape[1] == fused_batch.GROUP_ROWS
    assert_train_agree(ref, cand, 2, RTOL, ATOL)


@pytest.mark.parametrize("scenario, batch_size, dropout", [("names", 40, 0.0), ("alice", 16, 0.0),
                                                            ("names", 40, 0.2)])
def test_threaded_batch_loop_gives_the_serial_loops_numbers(request, scenario, batch_size, dropout):
    exp = request.getfixturevalue(f"{scenario}_exp")
    serial, threaded = (make_backend(exp, "fused", batch_size=batch_size, dropout=dropout) for _ in range(2))
    assert serial.groups > 1
    a = [serial._run(serial.tokens, serial.offsets, s, n, serial.hyper, threads=False) for s, n in [(0, 2), (2, 1)]]
    b = [threaded._run(threaded.tokens, threaded.offsets, s, n, threaded.hyper, threads=True)
         for s, n in [(0, 2), (2, 1)]]
    assert a == b
    for x, y in ((serial.w, threaded.w), (serial.m, threaded.m), (serial.v, threaded.v)):
        assert np.array_equal(x, y)


def test_compile_runs_only_the_loop_the_run_uses(names_exp, monkeypatch):
    called = []
    monkeypatch.setattr(fm.fused_train, "train_loop", lambda *a: called.append("train_loop"))
    for name in ("batch_loop", "batch_loop_threads"):
        monkeypatch.setattr(fm.fused_batch, name, lambda *a, name=name: called.append(name))
    monkeypatch.setattr(fm.numba, "get_num_threads", lambda: 1)
    make_backend(names_exp, "fused").compile()
    make_backend(names_exp, "fused", batch_size=16).compile()
    make_backend(names_exp, "fused", dropout=0.1).compile()  # dropout: the batch loop, even at one document
    assert called == ["train_loop", "batch_loop", "batch_loop"]


def test_the_batch_path_gives_scipys_blas_one_thread_whatever_the_variables_say(names_exp, monkeypatch):
    # np.dot runs inside the groups' threads: BLAS threads of its own would only spin (a step 50x slower)
    import ctypes

    from scipy.linalg import cython_blas

    lib = ctypes.CDLL(cython_blas.__file__)
    if getattr(lib, "scipy_openblas_get_num_threads", None) is None:
        pytest.skip("scipy's BLAS is not its bundled OpenBLAS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    lib.scipy_openblas_set_num_threads(2)
    make_backend(names_exp, "fused", batch_size=2)
    assert lib.scipy_openblas_get_num_threads() == 1


# -- the command line and the default backend ---------------------------------------------------


@pytest.fixture(scope="module")
def names_run(tmp_path_factory):
    """`python -m microgpt.train --backend fused` on names, 1000 steps, every loss printed; (stdout, model)."""
    shared_file("names.txt")
    model = str(tmp_path_factory.mktemp("fused") / "model.json")
    r = run_cli(["-m", "microgpt.train", "--backend", "fused", "--log-every", "1", "-o", model])
    assert r.returncode == 0, r.stderr
    return r.stdout, model


def test_cli_names_run_prints_the_python_backends_losses_and_samples(names_run):
    stdout, _ = names_run
    assert_is_the_golden_run(stdout)  # all 1000 losses, the held-out loss and the samples of the python backend
    assert "backend: fused (float64)" in stdout


def test_generate_with_fused_gives_the_python_backends_samples(names_run):
    _, model = names_run
    got = {}
    for backend in ("fused", "python"):
        r = run_cli(["-m", "microgpt.generate", "--model", model, "--backend", backend, "-n", "8"])
        assert r.returncode == 0, r.stderr
        got[backend] = printed_samples(r.stdout)
    assert got["fused"] == got["python"] == NAMES_SEED42["samples"][:8]  # the training run's stream, continued


def test_cli_short_run_with_batches_in_float32(tmp_path):
    lines = train_cli_lines(tmp_path, "fused", 4, "--dtype", "float32", "--batch-size", "4", "--grad-accum", "2",
                            "--num-samples", "2")
    assert sum(line.startswith("step ") for line in lines) == 4
    assert sum(line.startswith("sample ") for line in lines) == 2


def test_auto_is_fused_when_numba_is_installed():
    assert resolve_name("auto") == "fused"


def test_without_numba_training_says_once_that_it_uses_python(tmp_path):
    shared_file("names.txt")
    model = str(tmp_path / "m.json")
    r = run_cli(["-m", "microgpt.train", "--steps", "2", "--num-samples", "1", "-o", model], block=("numba",))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("numba is not installed") == 1 and "uses the python backend" in r.stderr
    assert "backend: python" in r.stdout
    g = run_cli(["-m", "microgpt.generate", "--model", model, "-n", "1"], block=("numba",))
    assert g.returncode == 0 and len(printed_samples(g.stdout)) == 1, g.stderr


@pytest.mark.parametrize("batch_size", [1, 2])
def test_weight_decay_matches_python(names_exp, batch_size):
    assert_weight_decay_matches_python(names_exp, "fused", batch_size=batch_size)


@pytest.mark.parametrize("batch_size, grad_accum", [(1, 1), (2, 1), (2, 2)])  # batch 1: on the batch loop too
def test_dropout_matches_python(names_exp, batch_size, grad_accum):
    assert_dropout_matches_python(names_exp, "fused", batch_size=batch_size, grad_accum=grad_accum)
