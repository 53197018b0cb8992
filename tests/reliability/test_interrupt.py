"""Ctrl-C, SIGTERM and SIGKILL: nothing trained is lost and model.json always loads.

SIGINT/SIGTERM go to a real training process once it has printed a progress line: it saves the
last completed step, says where, exits 128+signum, and the file resumes to exactly the run that
was never interrupted. SIGKILL goes to a process saving names-sized checkpoints in a loop at
random moments; after every kill the file loads and holds a whole save.
"""

import os
import random
import re
import signal
import stat
import subprocess
import sys
import time

import pytest

from conftest import run_cli
from reliability_support import (LineReader, backend_params, popen_cli, printed_losses, small_config_dict,
                                 write_config, write_names)

from microgpt import checkpoint
from microgpt.cli import run_main
from microgpt.config import config_from_dict
from microgpt.experiment import prepare

HERE = os.path.dirname(os.path.abspath(__file__))
WRITER = os.path.join(HERE, "checkpoint_writer.py")
sys.path.insert(0, HERE)
from checkpoint_writer import check_whole, make  # noqa: E402


LONG = 10 ** 8  # a horizon no test reaches: the run is still going when the signal arrives


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("interrupt")
    return {"data": write_names(d / "names.txt"), "config": write_config(d / "long.json", small_config_dict(LONG))}


def train_args(files, out, *extra):
    return ["-m", "microgpt.train", "--config", files["config"], "--data", files["data"], "--log-every", "1",
            "--num-samples", "0", "-o", str(out), *extra]


def straight_run(files, backend, steps):
    """In-process, never interrupted: the backend after `steps` steps from scratch, and their losses."""
    exp = prepare(config_from_dict(small_config_dict(LONG, backend=backend)), files["data"], quiet=True)
    model = exp.make_backend()
    return model, model.train_steps(0, steps)


def assert_holds_the_straight_run(path, model, steps):
    """The file is the uninterrupted run after exactly `steps` completed steps: every weight and moment."""
    ck = checkpoint.load(str(path))
    assert ck.train_state["step"] == steps
    assert ck.weights == model.get_weights()
    assert (ck.train_state["adam_m"], ck.train_state["adam_v"]) == model.get_adam()


def signalled_message(err, signum, out):
    """The step a signalled run reports saving, after checking its one line on stderr."""
    assert "Traceback" not in err and "Warning" not in err, err
    name = signal.Signals(signum).name
    m = re.search(rf"^{name}: stopped after step (\d+) of {LONG}; saved (.+) \(continue with --resume\)$", err, re.M)
    assert m and m.group(2) == str(out), err
    return int(m.group(1))


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("backend", backend_params())
def test_signal_saves_the_last_step_says_where_and_resumes_exactly(files, tmp_path, backend, signum, code):
    out = tmp_path / "model.json"
    proc = popen_cli(train_args(files, out, "--backend", backend))
    stdout = LineReader(proc.stdout)
    stdout.wait_for(rf"^step +\d+ / {LONG} \| loss")
    proc.send_signal(signum)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == code, err
    step = signalled_message(err, signum, out)
    printed = printed_losses(stdout.text())
    assert printed and printed[-1][0] == step >= 1  # the saved step is the last one completed
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]

    # the interrupted run, resumed, is the run that was never interrupted: every loss, weight and moment
    resumed = run_cli(train_args(files, out, "--backend", backend, "--resume", "--stop-after", str(step + 3)))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {step} of {LONG}" in resumed.stdout
    model, losses = straight_run(files, backend, step + 3)
    assert printed + printed_losses(resumed.stdout) == [(i + 1, f"{x:.4f}") for i, x in enumerate(losses)]
    assert_holds_the_straight_run(out, model, step + 3)


@pytest.mark.parametrize("backend", backend_params())
def test_signal_between_many_steps_per_call_saves_a_completed_step(files, tmp_path, backend):
    """Without --log-every the loop hands each backend chunks of ~0.1 s of steps (the fused one runs a
    chunk in one compiled call, thousands of steps); the signal is seen at the end of the chunk in
    flight, and what is saved is exactly the uninterrupted run at the step named."""
    out = tmp_path / "model.json"
    args = ["-m", "microgpt.train", "--config", files["config"], "--data", files["data"], "--num-samples", "0",
            "--backend", backend, "-o", str(out)]
    proc = popen_cli(args)
    stdout = LineReader(proc.stdout)
    stdout.wait_for(rf"^step +1 / {LONG} \| loss")  # the next line would come at step {LONG // 20}
    time.sleep(0.5)  # long enough for the chunks to grow past one step
    proc.send_signal(signal.SIGTERM)
    # promptly: the run has ~10^8 steps (hours) left; a signal seen only at the end would time out here
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    step = signalled_message(err, signal.SIGTERM, out)
    assert 1 < step < LONG // 20, step
    assert [s for s, _ in printed_losses(stdout.text())] == [1]
    assert_holds_the_straight_run(out, straight_run(files, backend, step)[0], step)


def test_a_second_ctrl_c_stops_at_once_and_the_file_still_loads(files, tmp_path):
    out = tmp_path / "model.json"
    first = run_cli(train_args(files, out, "--stop-after", "3"))
    assert first.returncode == 0, first.stderr
    proc = popen_cli(train_args(files, out, "--resume"))
    LineReader(proc.stdout).wait_for(rf"^step +\d+ / {LONG} \| loss")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    # 130; or, when the second signal lands as the interpreter exits, killed by SIGINT (the shell shows 130 too)
    assert proc.wait(timeout=60) in (130, -signal.SIGINT), err
    assert "Traceback" not in err
    # depending on where the second signal lands: during the steps or the save, or after it
    assert re.search(r"^SIGINT( again: stopped at once; .* holds the last completed save|: stopped after step \d+ )"
                     r"|^interrupted$", err, re.M), err
    assert checkpoint.load(str(out)).train_state["step"] >= 3


def test_a_second_signal_during_the_steps_stops_without_saving(files, tmp_path, monkeypatch, capsys):
    """Deterministically: the second SIGINT arrives inside a chunk of steps (in-process, to our own pid)."""
    from microgpt import train
    from microgpt.backends.python import PythonBackend

    real = PythonBackend.train_steps

    def steps_then_two_signals(self, start, count):
        if start == 3:
            os.kill(os.getpid(), signal.SIGINT)  # the handler only sets a flag...
            os.kill(os.getpid(), signal.SIGINT)  # ...the second raises KeyboardInterrupt here
        return real(self, start, count)

    monkeypatch.setattr(PythonBackend, "train_steps", steps_then_two_signals)
    out = tmp_path / "model.json"
    assert train.main(train_args(files, out)[2:]) == 130
    err = capsys.readouterr().err
    assert err == "SIGINT again: stopped at once; nothing was saved\n", err
    assert not os.listdir(tmp_path)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back


def test_ctrl_c_outside_training_is_a_clean_exit_130(capsys):
    def main(argv):
        raise KeyboardInterrupt

    assert run_main(main, []) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_sigkill_while_saving_never_leaves_an_unreadable_file(tmp_path):
    """Kill a writer of names-sized checkpoints at random moments; load the file after every kill."""
    path = tmp_path / "model.json"
    rng = random.Random(7)
    saved = -1  # the last save a writer reported complete
    mid_write, left = 0, set()
    for kill in range(12):
        proc = subprocess.Popen([sys.executable, WRITER, str(path), "1", str(saved + 1)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        lines = LineReader(proc.stdout)
        lines.wait_for(r"^saved", timeout=60)  # the interpreter is up and writing
        time.sleep(rng.uniform(0.0, 0.15))
        proc.kill()
        proc.wait(timeout=30)
        reported = [int(l.split()[1]) for l in lines.text().splitlines() if l.startswith("saved")]
        temps = set(f for f in os.listdir(tmp_path) if f.endswith(".tmp"))
        mid_write += bool(temps - left)  # this kill left a temporary file: it landed inside a save
        left = temps
        writer, step = check_whole(checkpoint.load(str(path)))  # loads, and every number is one save's
        # never older than the last save reported complete; at most the one whose report the kill cut off
        assert reported[-1] <= step <= reported[-1] + 1, (reported[-1], step)
        assert step > saved
        saved = step
    # the kills did land while a save was being written (each left its temporary file behind)
    assert mid_write >= 3, mid_write
    leftovers = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert leftovers
    # a later save removes temporary files that no writer can still be using (older than an hour)
    old = time.time() - 2 * 3600
    for f in leftovers:
        os.utime(tmp_path / f, (old, old))
    checkpoint.save(str(path), make(1, saved + 1))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    checkpoint.save(str(path), make(1, 1))
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.json, "dump", fail)
    with pytest.raises(checkpoint.CheckpointError, match=r"model.json: cannot save: .*No space left on device"):
        checkpoint.save(str(path), make(1, 2))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.json"]


def test_saved_file_has_ordinary_permissions(tmp_path):
    """The temporary file is private while written; the model file gets the mode any new file would."""
    umask = os.umask(0o022)
    try:
        path = tmp_path / "model.json"
        checkpoint.save(str(path), make(1, 1))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        os.chmod(path, 0o600)  # a mode the user chose is kept by the next save
        checkpoint.save(str(path), make(1, 2))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(umask)


@pytest.mark.parametrize("where, fragment", [
    ("file/model.json", "file is a file, not a folder"),  # a parent that is a file
    ("folder", "is a folder; give the path of a file inside it"),  # a path that is a folder
])
def test_unwritable_output_is_a_one_line_error(files, tmp_path, where, fragment):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    r = run_cli(["-m", "microgpt.train", "--config", files["config"], "--data", files["data"], "--steps", "2",
                 "--num-samples", "0", "-o", str(tmp_path / where)])
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: ") and fragment in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
