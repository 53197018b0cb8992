"""The `torch` backend (autograd, no hand-written backward) against the reference and the python backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch backend needs torch: pip install 'microgpt[torch]'")

import torch  # noqa: E402

from conftest import run_cli, shared_file  # noqa: E402
from equivalence import names_exp  # noqa: E402,F401  (fixture)
from equivalence import (assert_inference_matches_python, assert_samples_agree,  # noqa: E402
                         assert_short_and_long_documents_match_python, assert_state_round_trips, assert_train_agree,
                         make_backend, tiny_experiment, train_cli_lines, weights_array,
                         assert_weight_decay_matches_python, assert_dropout_matches_python)
from golden.reference import NAMES_SEED42  # noqa: E402
from microgpt import checkpoint  # noqa: E402
from microgpt.backends import torch_backend as tb  # noqa: E402
from microgpt.backends.torch_backend import Batch, TorchBackend  # noqa: E402
from microgpt.errors import MicrogptError  # noqa: E402
from microgpt.sampling import decode, sample  # noqa: E402

# float64 against the python backend's scalar arithmetic: the same numbers, summed in other orders
RTOL, ATOL = 1e-9, 1e-15


@pytest.fixture(scope="module")
def tiny_exp(names_exp):
    return tiny_experiment(names_exp)


def torch_backend(exp, dtype="float64", threads=1, **training):
    # one thread: torch's intra-op threads only cost on models this small, and the machine is shared
    cfg = exp.cfg.replace("training", dtype=dtype, **training)
    return TorchBackend(cfg, exp.tokenizer.vocab_size, exp.weights, exp.train_tokens, threads=threads)


# -- the reference ----------------------------------------------------------------------


def test_names_1000_steps_print_the_golden_losses_and_samples(names_exp):
    # the full reference run in-process: ~3 s of torch at one thread
    be = torch_backend(names_exp)
    losses = be.train_steps(0, 1000)
    printed = [f"{loss:.4f}" for loss in losses]
    mismatched = [i + 1 for i, (a, b) in enumerate(zip(printed, NAMES_SEED42["losses"])) if a != b]
    assert not mismatched, f"steps whose printed loss differs from the golden run: {mismatched[:10]}"
    assert f"{be.eval_loss(names_exp.val_tokens):.4f}" == NAMES_SEED42["val_loss"]
    rng = names_exp.rng.__class__()
    rng.setstate(names_exp.rng.getstate())  # the fixture's stream is shared: sample from a copy
    samples = [decode(names_exp.tokenizer, sample(be, rng, [], 0.5)) for _ in range(20)]
    assert samples == NAMES_SEED42["samples"]


def test_every_parameter_agrees_with_python_after_50_steps(names_exp):
    assert_train_agree(make_backend(names_exp, "python"), torch_backend(names_exp), 50, RTOL, ATOL)


def test_adam_is_torch_optim_adam_with_the_learning_rate_set_per_step():
    # SPEC §2's update, written out here, against torch's own optimizer fed the same gradients
    torch.manual_seed(0)
    p_ours = torch.randn(50, dtype=torch.float64)
    p_theirs = torch.nn.Parameter(p_ours.clone())
    opt = torch.optim.Adam([p_theirs], lr=0.01, betas=(0.85, 0.99), eps=1e-8)
    m, v = torch.zeros(50, dtype=torch.float64), torch.zeros(50, dtype=torch.float64)
    for step in range(20):
        g = torch.randn(50, dtype=torch.float64)
        lr = 0.01 * (1 - step / 20)
        m = 0.85 * m + 0.15 * g
        v = 0.99 * v + 0.01 * g * g
        p_ours = p_ours - lr * (m / (1 - 0.85 ** (step + 1))) / (torch.sqrt(v / (1 - 0.99 ** (step + 1))) + 1e-8)
        for group in opt.param_groups:
            group["lr"] = lr
        p_theirs.grad = g.clone()
        opt.step()
    torch.testing.assert_close(p_theirs.detach(), p_ours, rtol=1e-13, atol=0)
    assert not torch.equal(p_ours, torch.zeros(50, dtype=torch.float64))


def test_the_backends_update_is_that_adam(names_exp):
    be = torch_backend(names_exp)
    start = be.flat.detach().clone()
    be.train_steps(0, 1)
    g = be.flat.grad.detach().clone()
    p = torch.nn.Parameter(start)
    t = names_exp.cfg.training
    opt = torch.optim.Adam([p], lr=0.01, betas=(t.beta1, t.beta2), eps=t.eps)
    p.grad = g
    opt.step()
    torch.testing.assert_close(be.flat.detach(), p.detach(), rtol=1e-13, atol=0)


# -- batches, accumulation, padding -----------------------------------------------------


def test_batch_of_6_equals_python_grad_accum_6(names_exp):
    # 6 names of different lengths per step, padded to the longest: the padding must change nothing
    assert_train_agree(make_backend(names_exp, "python", grad_accum=6), torch_backend(names_exp, batch_size=6),
                       2, RTOL, ATOL)


def test_batch_with_grad_accum_equals_python_grad_accum(names_exp):
    assert_train_agree(make_backend(names_exp, "python", grad_accum=4),
                       torch_backend(names_exp, batch_size=2, grad_accum=2), 2, RTOL, ATOL)


def _loss_and_grad(be, docs, docs_in_step, pad=None):
    batch = Batch(docs, be.cfg.model.block_size, be.bos if pad is None else pad, be.device)
    flat = be.flat.detach().clone().requires_grad_(True)
    loss, losses = be._loss(flat, batch.inputs, batch.targets, batch.weights(docs_in_step, be.dtype))
    loss.backward()
    return batch.doc_means(losses).tolist(), flat.grad


def test_padded_positions_contribute_nothing(tiny_exp):
    be = torch_backend(tiny_exp, batch_size=4)
    by_length = sorted(tiny_exp.train_tokens, key=len)
    docs = [by_length[0], by_length[-1], by_length[len(by_length) // 2], by_length[0][:2]]
    losses, together = _loss_and_grad(be, docs, len(docs))
    assert len({min(6, len(d) - 1) for d in docs}) > 2
    for pad in (0, be.vocab_size - 2):  # what the padding holds reaches no loss and no gradient
        again, grad = _loss_and_grad(be, docs, len(docs), pad)
        assert again == losses
        assert torch.equal(grad, together)
    alone = [_loss_and_grad(be, [d], 1) for d in docs]  # each document unpadded, a step of its own
    np.testing.assert_allclose(losses, [loss[0] for loss, _ in alone], rtol=1e-14)
    torch.testing.assert_close(together, sum(g for _, g in alone) / len(docs), rtol=1e-12, atol=1e-16)


# -- inference, state, dtype, options ---------------------------------------------------


def test_eval_and_sampling_logits_match_python(tiny_exp):
    assert_inference_matches_python(tiny_exp, torch_backend(tiny_exp), n_docs=40)


def test_one_position_document_and_full_context():
    assert_short_and_long_documents_match_python("torch")


def test_state_round_trips_and_resumes_bit_for_bit(tiny_exp):
    assert_state_round_trips(tiny_exp, torch_backend(tiny_exp, batch_size=2))


def test_float32_computes_in_float32_and_agrees_with_float64(names_exp):
    be = torch_backend(names_exp, dtype="float32", batch_size=4)
    losses = be.train_steps(0, 10)
    assert be.flat.dtype == be.m.dtype == be.v.dtype == be.flat.grad.dtype == torch.float32
    logits, kv = tb.forward(be.views(be.flat), be.cfg.model, torch.tensor([[0, 1, 2]]))
    assert logits.dtype == kv[0][0].dtype == torch.float32
    want = torch_backend(names_exp, batch_size=4).train_steps(0, 10)
    np.testing.assert_allclose(losses, want, rtol=1e-4)


def test_threads_follow_the_shared_policy(monkeypatch, tiny_exp):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
        assert TorchBackend(tiny_exp.cfg, tiny_exp.tokenizer.vocab_size, tiny_exp.weights).threads == 1
        assert torch.get_num_threads() == 1
        monkeypatch.delenv("NUMBA_NUM_THREADS")
        from microgpt.threads import torch_threads, usable_cores

        assert torch_threads() == usable_cores()
    finally:
        torch.set_num_threads(before)


def test_a_divergent_loss_is_not_finite(tiny_exp):
    # the NaN guard of the training loop reads the returned loss: a NaN weight must reach it
    be = torch_backend(tiny_exp)
    with torch.no_grad():
        be.flat[0:be.flat.numel()] = math.nan
    assert math.isnan(be.train_steps(0, 1)[0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the error cannot happen")
def test_cuda_without_a_gpu_is_one_line(tiny_exp):
    with pytest.raises(MicrogptError, match="--device cuda: .*use --device cpu"):
        TorchBackend(tiny_exp.cfg, tiny_exp.tokenizer.vocab_size, tiny_exp.weights, device="cuda")
    assert tb.resolve_device("auto", "float64").type == "cpu"


def test_compile_that_fails_is_one_line(tiny_exp, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no C compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    be = TorchBackend(tiny_exp.cfg, tiny_exp.tokenizer.vocab_size, tiny_exp.weights, tiny_exp.train_tokens,
                      compile=True, threads=1)
    with pytest.raises(MicrogptError, match=r"^--compile: torch.compile is not usable here \(RuntimeError: no C "
                                            r"compiler found\); run without --compile$"):
        be.compile()


@pytest.mark.slow
def test_compiled_steps_equal_eager_ones(tiny_exp):
    # inductor generates and builds C++ (40-130 s on 2 busy cores); scripts/torch_bench.py checks compiled
    # against eager too (the first 5 losses of every case, each side from the same weights)
    eager = torch_backend(tiny_exp, batch_size=4)
    compiled = TorchBackend(eager.cfg, tiny_exp.tokenizer.vocab_size, tiny_exp.weights, tiny_exp.train_tokens,
                            compile=True, threads=1)
    from torch._dynamo.utils import counters

    assert compiled.compile() > 0
    graphs = counters["stats"]["unique_graphs"]
    assert_train_agree(eager, compiled, 5, 1e-12, 1e-15)
    assert counters["stats"]["unique_graphs"] == graphs, "training traced again after compile()"


# -- the command line -------------------------------------------------------------------


def test_cli_20_steps_print_the_python_backends_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    want = train_cli_lines(tmp_path, "python", 20)
    got = train_cli_lines(tmp_path, "torch", 20)
    assert sum(line.startswith("sample ") for line in got) == 20
    assert got == want


def test_a_torch_trained_model_samples_the_same_on_fused_and_back(tmp_path, names_exp):
    pytest.importorskip("numba")
    shared_file("names.txt")
    path = tmp_path / "torch.json"
    r = run_cli(["-m", "microgpt.train", "--backend", "torch", "--steps", "40", "--num-samples", "0",
                 "-o", str(path)], env={"NUMBA_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    ckpt = checkpoint.load(str(path))
    assert ckpt.backend == "torch"
    from microgpt.generate import load_backend

    on_fused, on_torch = load_backend(ckpt, "fused"), load_backend(ckpt, "torch", "cpu")
    assert assert_samples_agree(on_torch, on_fused, seed=7, num=30, temperature=0.8)
    # and back: a fused-trained model on torch
    fused = make_backend(names_exp, "fused")
    fused.train_steps(0, 40)
    back = TorchBackend(fused.cfg, names_exp.tokenizer.vocab_size, fused.get_weights(), threads=1)
    assert_samples_agree(fused, back, seed=8, num=30, temperature=0.8)


def test_without_torch_the_backend_is_one_line_naming_the_extra(tmp_path):
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", "torch", "--steps", "2", "-o", str(tmp_path / "m.json")],
                block=("torch",))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "error: backend 'torch' needs torch, which is not installed: pip install 'microgpt[torch]'"]
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("flags", [["--device", "cpu"], ["--compile"]])
def test_torch_flags_on_another_backend_are_one_line(tmp_path, flags):
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", "python", "--steps", "2", *flags,
                 "-o", str(tmp_path / "m.json")])
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: {flags[0]}: for --backend torch only (this run uses python)"


def test_weight_decay_matches_python(names_exp):
    assert_weight_decay_matches_python(names_exp, "torch")


def test_dropout_matches_python(names_exp):
    assert_dropout_matches_python(names_exp, "torch", grad_accum=2)
