"""Data-parallel training on torchrun: 2 CPU ranks (gloo) on 127.0.0.1 train what one process trains.

Each test starts a real torchrun job of two processes (~5-15 s each on a busy 2-core machine).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch backend needs torch: pip install 'microgpt[torch]'")

import torch.distributed  # noqa: E402

from conftest import ROOT, cli_env, shared_file  # noqa: E402
from equivalence import assert_weights_close, names_exp  # noqa: E402,F401  (fixture)
from microgpt import checkpoint  # noqa: E402
from microgpt.backends.torch_backend import TorchBackend  # noqa: E402

if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

WORKER = os.path.join(ROOT, "tests", "backends", "torch_ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """A 2-process torchrun job on this machine only (loopback rendezvous and gloo sockets)."""
    shared_file("names.txt")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *args]
    env = cli_env({"GLOO_SOCKET_IFNAME": "lo", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def train_cli(*args: str) -> subprocess.CompletedProcess:
    return torchrun(WORKER, "cli", "--", "--backend", "torch", "--num-samples", "2", *args)


def one_process(exp, steps, batch, accum=1, horizon=None):
    cfg = exp.cfg.replace("training", batch_size=batch, grad_accum=accum, num_steps=horizon or exp.cfg.training.num_steps)
    be = TorchBackend(cfg, exp.tokenizer.vocab_size, exp.weights, exp.train_tokens, threads=1)
    return be.train_steps(0, steps), be.get_weights()


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_two_ranks_train_what_one_process_trains(names_exp):
    # batch 4 x 2 accumulation: each rank 2 documents of each micro-batch, DDP silent on the first
    r = torchrun(WORKER, "losses", "8", "4", "2")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["world"] == 2
    want_losses, want_weights = one_process(names_exp, 8, 4, 2)
    np.testing.assert_allclose(got["losses"], want_losses, rtol=1e-6)  # the bound; in fact ~1e-15
    assert_weights_close(want_weights, got["weights"], rtol=1e-9, atol=1e-15)
    assert len(set(got["losses"])) == 8


def test_only_rank_0_logs_and_saves_and_a_resumed_job_ends_where_one_process_does(tmp_path, names_exp):
    out = tmp_path / "model.json"
    first = train_cli("--batch-size", "4", "--steps", "6", "--stop-after", "3", "--log-every", "1", "-o", str(out))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("num docs: 32033") == 1 and first.stdout.count("step    1 /    6") == 1
    assert checkpoint.load(str(out)).train_state["step"] == 3
    again = train_cli("--resume", "--log-every", "1", "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("resuming from step 3 of 6") == 1
    assert again.stdout.count("sample  1: ") == 1
    want_losses, want_weights = one_process(names_exp, 6, 4, horizon=6)  # --steps 6 is the schedule's horizon
    printed = [line.split(" | ")[1] for line in (first.stdout + again.stdout).splitlines() if line.startswith("step ")]
    assert printed == [f"loss {loss:.4f}" for loss in want_losses]
    assert_weights_close(want_weights, checkpoint.load(str(out)).weights, rtol=1e-9, atol=1e-15)


def test_a_batch_the_ranks_cannot_share_is_one_line_and_no_file(tmp_path):
    out = tmp_path / "model.json"
    r = train_cli("--batch-size", "3", "--steps", "2", "-o", str(out))
    assert r.returncode != 0
    assert errors(r.stderr) == ["error: --batch-size 3 is not divisible by the 2 ranks of this torchrun job; give a "
                                "multiple of 2 (each rank trains B / world documents)"]
    assert "Traceback (most recent call last):\n  File \"" + ROOT not in r.stderr  # torchrun's own report aside
    assert not out.exists()


def test_ranks_with_different_configs_are_one_line(tmp_path):
    out = tmp_path / "model.json"
    r = torchrun(WORKER, "cli", "--skew-seed", "--", "--backend", "torch", "--batch-size", "2", "--steps", "2",
                 "-o", str(out))
    assert r.returncode != 0
    assert errors(r.stderr) == ["error: rank 1 of the torchrun job differs from rank 0 in its config, docs, weights; "
                                "start every rank with the same command, data and checkpoint"]
    assert not out.exists()


def test_a_rank_that_dies_leaves_the_checkpoint_as_it_was(tmp_path):
    out = tmp_path / "model.json"
    good = train_cli("--batch-size", "2", "--steps", "8", "--stop-after", "2", "-o", str(out))
    assert good.returncode == 0, good.stderr
    before = out.read_bytes()
    r = torchrun(WORKER, "cli", "--die-at", "5", "--", "--backend", "torch", "--resume", "-o", str(out))
    assert r.returncode != 0
    lines = errors(r.stderr)
    assert len(lines) <= 1 and all("another rank of the torchrun job stopped" in line for line in lines), r.stderr
    assert out.read_bytes() == before
    assert not [f for f in tmp_path.iterdir() if f.name != "model.json"]


def test_a_signal_to_one_rank_between_steps_stops_both_after_the_next_step(tmp_path, names_exp):
    # the racy moment: rank 1 is signalled after its step 3, rank 0 never is; rank 1 leaving the loop at once
    # would leave rank 0 in step 4's all-reduce (torchrun then kills both, and nothing is saved)
    out = tmp_path / "model.json"
    r = torchrun(WORKER, "cli", "--signal-at", "3", "--", "--backend", "torch", "--batch-size", "2",
                 "--steps", "50", "--log-every", "1", "-o", str(out), timeout=180)
    assert r.returncode != 0
    assert out.exists(), r.stderr
    assert checkpoint.load(str(out)).train_state["step"] == 4, r.stderr
    assert f"SIGTERM: stopped after step 4 of 50; saved {out}" in r.stderr, r.stderr  # rank 0, not signalled
    _, want = one_process(names_exp, 4, 2, horizon=50)
    assert_weights_close(want, checkpoint.load(str(out)).weights, rtol=1e-9, atol=1e-15)


def test_sigterm_stops_every_rank_at_the_same_step_and_saves_it(tmp_path, names_exp):
    # torchrun forwards the signal to both ranks; whichever sees it first, both stop after the same step
    shared_file("names.txt")
    out = tmp_path / "model.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "microgpt.train",
           "--backend", "torch", "--batch-size", "2", "--steps", "100000", "--log-every", "1", "-o", str(out)]
    env = cli_env({"GLOO_SOCKET_IFNAME": "lo", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = [proc.stdout.readline() for _ in range(30)]  # the headers, then steps
        assert any(line.startswith("step ") for line in seen), seen
        proc.send_signal(signal.SIGTERM)
        rest, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert out.exists(), stderr
    saved = checkpoint.load(str(out)).train_state["step"]
    assert f"SIGTERM: stopped after step {saved} of 100000; saved {out}" in stderr, stderr
    printed = [line for line in "".join(seen).splitlines() + rest.splitlines() if line.startswith("step ")]
    assert printed[-1].split(" / ")[0].split() == ["step", str(saved)]  # the last line printed is the step saved
    _, want = one_process(names_exp, saved, 2, horizon=100000)
    assert_weights_close(want, checkpoint.load(str(out)).weights, rtol=1e-9, atol=1e-15)
