"""--stop-after and --resume: a run cut in pieces is the uninterrupted run, loss for loss and bit for bit.

For every backend (skipped only where numpy/numba are not installed): in-process, the float losses
and final weights of 200 steps equal those of 100 steps, a checkpoint on disk, and 100 more; as a
user runs it, every printed loss line, the validation loss, the samples and the whole final
model.json are identical.
"""

import functools
import json
import os

import pytest

from conftest import run_cli
from golden.reference import printed_samples
from reliability_support import (backend_dtype_params, backend_params, printed_losses, read_json, small_config_dict,
                                 write_config, write_names)

from microgpt import checkpoint
from microgpt.config import config_from_dict
from microgpt.experiment import prepare
from microgpt.train import make_checkpoint, resume_backend

STEPS, CUT = 200, 100


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    return {"data": write_names(d / "names.txt"), "config": write_config(d / "small.json", small_config_dict(STEPS)),
            "dir": d}


def fresh(files, backend, dtype="float64"):
    cfg = config_from_dict(small_config_dict(STEPS, backend=backend, dtype=dtype))
    return prepare(cfg, files["data"], quiet=True)


@pytest.mark.parametrize("backend, dtype", backend_dtype_params())
def test_stop_save_load_resume_equals_the_uninterrupted_run(files, tmp_path, backend, dtype):
    exp = fresh(files, backend, dtype)
    whole = exp.make_backend()
    losses = whole.train_steps(0, STEPS)

    exp1 = fresh(files, backend, dtype)
    first = exp1.make_backend()
    losses1 = first.train_steps(0, CUT)
    path = str(tmp_path / "model.json")
    checkpoint.save(path, make_checkpoint(exp1, first, CUT))
    del first

    exp2 = fresh(files, backend, dtype)
    second, start = resume_backend(exp2, checkpoint.load(path), path)
    assert start == CUT
    losses2 = second.train_steps(start, STEPS - start)

    assert losses1 + losses2 == losses  # every float, exactly
    assert second.get_weights() == whole.get_weights()
    assert second.get_adam() == whole.get_adam()
    assert exp2.rng.getstate() == exp.rng.getstate()  # so the samples after training match too
    assert all(isinstance(x, float) for x in losses)


ARRAY_BACKENDS = [p for p in backend_params() if p.values[0] != "python"]


@pytest.mark.parametrize("backend", ARRAY_BACKENDS)
def test_resume_with_batches_and_accumulation_equals_the_uninterrupted_run(files, tmp_path, backend):
    """batch_size 2 x grad_accum 2: four documents a step, so the data position is 4 * step, not step."""
    steps, cut, extra = 60, 23, {"batch_size": 2, "grad_accum": 2}

    def experiment():
        return prepare(config_from_dict(small_config_dict(steps, backend=backend, **extra)), files["data"],
                       quiet=True)

    exp = experiment()
    whole = exp.make_backend()
    losses = whole.train_steps(0, steps)
    exp1 = experiment()
    first = exp1.make_backend()
    losses1 = first.train_steps(0, cut)
    path = str(tmp_path / "model.json")
    checkpoint.save(path, make_checkpoint(exp1, first, cut))
    exp2 = experiment()
    second, start = resume_backend(exp2, checkpoint.load(path), path)
    losses2 = second.train_steps(start, steps - start)
    assert start == cut and losses1 + losses2 == losses
    assert second.get_weights() == whole.get_weights() and second.get_adam() == whole.get_adam()
    # and the run really differs from one document a step (the batch shape reached the backend)
    single = prepare(config_from_dict(small_config_dict(steps, backend=backend)), files["data"], quiet=True)
    assert single.make_backend().train_steps(0, 3) != losses[:3]


@pytest.mark.parametrize("backend", backend_params())
def test_chunking_of_steps_does_not_change_the_numbers(files, backend):
    """The CLI runs steps in chunks whose sizes depend on timing; the numbers must not."""
    one = fresh(files, backend).make_backend()
    expected = one.train_steps(0, 40)
    pieces = fresh(files, backend).make_backend()
    got, step = [], 0
    for size in (1, 2, 3, 7, 27):
        got += pieces.train_steps(step, size)
        step += size
    assert got == expected and pieces.get_weights() == one.get_weights()


def train_cli(files, backend, out, *extra):
    args = ["-m", "microgpt.train", "--config", files["config"], "--data", files["data"], "--backend", backend,
            "--log-every", "1", "-o", str(out), *extra]
    r = run_cli(args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    return r


@functools.lru_cache(maxsize=None)
def _uninterrupted(files_dir, backend):
    files = {"data": os.path.join(files_dir, "names.txt"), "config": os.path.join(files_dir, "small.json")}
    out = os.path.join(files_dir, f"whole-{backend}.json")
    return train_cli(files, backend, out), read_json(out)


def uninterrupted(files, backend):
    return _uninterrupted(str(files["dir"]), backend)


def final_lines(stdout):
    return [line for line in stdout.splitlines() if line.startswith("val loss:")] + printed_samples(stdout)


@pytest.mark.parametrize("backend", backend_params())
def test_cli_stop_after_100_then_resume_equals_200_steps(files, tmp_path, backend):
    whole, whole_doc = uninterrupted(files, backend)
    out = tmp_path / "model.json"
    part1 = train_cli(files, backend, out, "--stop-after", str(CUT))
    assert f"stopped after step {CUT} of {STEPS}; continue with --resume" in part1.stdout
    assert not printed_samples(part1.stdout)  # a stopped run does not sample
    saved = checkpoint.load(str(out))
    assert saved.train_state["step"] == CUT
    part2 = train_cli(files, backend, out, "--resume")
    assert f"resuming from step {CUT} of {STEPS} ({out})" in part2.stdout

    losses = printed_losses(whole.stdout)
    assert [s for s, _ in losses] == list(range(1, STEPS + 1))
    assert printed_losses(part1.stdout) + printed_losses(part2.stdout) == losses
    assert final_lines(part2.stdout) == final_lines(whole.stdout) and len(final_lines(whole.stdout)) == 4
    assert read_json(out) == whole_doc  # weights, Adam moments, step, RNG state: every float, exactly


def test_cli_three_quiet_pieces_with_odd_cuts_equal_the_whole(files, tmp_path):
    """--quiet runs steps in chunks of ~0.1 s, so these cuts fall inside chunks (python only: the in-process
    test above checks chunking for every backend, and each process start of the others costs a compile)."""
    backend = "python"
    whole, whole_doc = uninterrupted(files, backend)
    out = tmp_path / "model.json"
    train_cli(files, backend, out, "--quiet", "--stop-after", "37")
    train_cli(files, backend, out, "--quiet", "--resume", "--stop-after", "151")
    last = train_cli(files, backend, out, "--quiet", "--resume")
    assert final_lines(last.stdout) == final_lines(whole.stdout)
    assert read_json(out) == whole_doc


def test_resume_refuses_what_would_silently_give_another_run(files, tmp_path):
    """Other data, another seed, a stop at or before the saved step: each a clear error, the file kept."""
    out = tmp_path / "model.json"
    train_cli(files, "python", out, "--stop-after", "5")
    before = out.read_bytes()
    other = write_names(tmp_path / "other.txt", n=300, seed=2)  # same letters, other names

    def refused(*extra, fragment):
        r = run_cli(["-m", "microgpt.train", "--config", files["config"], "-o", str(out), "--resume", *extra])
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("error: ") and fragment in r.stderr, r.stderr
        assert out.read_bytes() == before

    refused("--data", other, fragment="trained on other data")
    refused("--data", files["data"], "--seed", "7", fragment="--seed 7")
    refused("--data", files["data"], "--stop-after", "5", fragment="--stop-after 5")
    refused("--data", files["data"], "--steps", "4", fragment="--steps 4")


def test_resuming_a_finished_run_trains_nothing_and_says_so(files, tmp_path):
    out = tmp_path / "model.json"
    cfg = small_config_dict(3)
    config = write_config(tmp_path / "three.json", cfg)
    args = ["-m", "microgpt.train", "--config", config, "--data", files["data"], "-o", str(out)]
    first = run_cli(args)
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    again = run_cli(args + ["--resume"])
    assert again.returncode == 0, again.stderr
    assert f"already trained 3 of 3 steps ({out}); nothing to resume" in again.stdout
    assert "saved" not in again.stdout and out.read_bytes() == before
    assert printed_samples(again.stdout) == printed_samples(first.stdout)
    # and a finished run can be extended: --steps sets a new horizon
    more = run_cli(args + ["--resume", "--steps", "5", "--log-every", "1"])
    assert more.returncode == 0, more.stderr
    assert [s for s, _ in printed_losses(more.stdout)] == [4, 5]
    assert checkpoint.load(str(out)).train_state["step"] == 5


def test_resume_without_training_state_is_an_error(files, tmp_path):
    out = tmp_path / "model.json"
    train_cli(files, "python", out, "--stop-after", "2")
    doc = read_json(out)
    doc["train_state"] = None
    out.write_text(json.dumps(doc))
    r = run_cli(["-m", "microgpt.train", "--config", files["config"], "--data", files["data"], "-o", str(out),
                 "--resume"])
    assert r.returncode == 1 and "has no training state to resume from" in r.stderr, r.stderr
