"""Saving never destroys what it does not own: `--output` (and every script's result file) tried as a user would.

Each bad path is refused before training starts (nothing printed on stdout, no step run, the path
as it was); a symbolic link is written through; a save that fails at the end anyway (a full disk,
simulated by a monkeypatched write) leaves the old file whole and rescues the model to $TMPDIR.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import re
import socket
from dataclasses import dataclass

import pytest

from conftest import ROOT, run_cli
from microgpt import checkpoint, output_path, train
from microgpt.cli import run_main
from microgpt.report import command_line as report
from reliability_support import small_config_dict, write_config, write_names

STEPS = 20


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def files(tmp_path):
    return {"config": write_config(tmp_path / "small.json", small_config_dict(STEPS, backend="python")),
            "data": write_names(tmp_path / "names.txt")}


@pytest.fixture
def run_train(files, capsys):
    def run(*argv) -> Run:
        code = run_main(train.main, ["--config", files["config"], "--data", files["data"], "--num-samples", "0",
                                     *argv])
        out = capsys.readouterr()
        return Run(code, out.out, out.err)
    return run


def one_error_line(r: Run, pattern: str) -> None:
    assert r.code == 1, r
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.search(pattern, r.stderr), (pattern, r.stderr)


def fifo(d):
    os.mkfifo(d / "out.json")
    return "out.json", r"is a named pipe \(FIFO\), not a regular file"


def sock(d):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / "out.json"))
    s.close()
    return "out.json", r"is a socket, not a regular file"


def folder(d):
    (d / "out.json").mkdir()
    return "out.json", r"is a folder; give the path of a file inside it"


def dangling(d):
    os.symlink("gone.json", d / "out.json")
    return "out.json", r"a symbolic link to gone.json, which does not exist"


def loop(d):
    os.symlink("out.json", d / "other.json")
    os.symlink("other.json", d / "out.json")
    return "out.json", r"a loop of symbolic links"


def inside_a_file(d):
    (d / "plain").write_text("x")
    return "plain/out.json", r"\S+/plain is a file, not a folder$"


@pytest.mark.parametrize("make", [fifo, sock, folder, dangling, loop, inside_a_file])
def test_a_bad_output_is_refused_before_training(tmp_path, run_train, make):
    out = tmp_path / "out"
    out.mkdir()
    name, message = make(out)
    before = sorted((p, os.lstat(out / p).st_mode, os.lstat(out / p).st_ino) for p in os.listdir(out))
    r = run_train("-o", str(out / name))
    one_error_line(r, rf"^error: --output {out}/{name}.*: {message}")
    assert r.stdout == ""  # not even the data was read
    assert sorted((p, os.lstat(out / p).st_mode, os.lstat(out / p).st_ino) for p in os.listdir(out)) == before


def test_a_bad_output_is_refused_before_resuming(tmp_path, run_train):
    """--resume reads --output first: a FIFO there would block that read forever."""
    fifo(tmp_path)
    one_error_line(run_train("--resume", "-o", str(tmp_path / "out.json")), r"is a named pipe")


def test_an_unwritable_folder_is_refused_before_training(tmp_path, run_train, monkeypatch):
    real_mkstemp = output_path.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # as root chmod cannot make a folder read-only: say it is
        if dir == str(tmp_path / "ro"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkstemp(*args, dir=dir, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(output_path.tempfile, "mkstemp", mkstemp)
    r = run_train("-o", str(tmp_path / "ro" / "m.json"))
    one_error_line(r, r"cannot create files in .*/ro: Permission denied; give a path in a folder you can write$")
    assert r.stdout == "" and os.listdir(tmp_path / "ro") == []


def test_a_link_is_written_through_and_resumed_through(tmp_path, run_train):
    disk = tmp_path / "big-disk"
    disk.mkdir()
    (disk / "model.json").write_text("a placeholder the first save replaces")
    link = tmp_path / "model.json"
    os.symlink(disk / "model.json", link)

    assert run_train("--stop-after", "5", "-o", str(link)).code == 0
    assert os.path.islink(link) and os.readlink(link) == str(disk / "model.json")
    assert checkpoint.load(str(disk / "model.json")).train_state["step"] == 5

    r = run_train("--resume", "-o", str(link))
    assert r.code == 0, r.stderr
    assert os.path.islink(link) and sorted(os.listdir(disk)) == ["model.json"]
    assert checkpoint.load(str(disk / "model.json")).train_state["step"] == STEPS


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """Writes into tmp_path/models fail with ENOSPC; the temporary folder is tmp_path/spare."""
    models, spare = tmp_path / "models", tmp_path / "spare"
    models.mkdir()
    spare.mkdir()
    real_flush = output_path._flush_to_disk

    def flush(f, tmp):
        if os.path.dirname(tmp) == str(models):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_flush(f, tmp)

    monkeypatch.setattr(output_path, "_flush_to_disk", flush)
    monkeypatch.setattr(checkpoint.tempfile, "tempdir", str(spare))
    return models, spare


def test_a_full_disk_at_the_end_rescues_the_model_to_the_temporary_folder(run_train, full_disk, capsys):
    models, spare = full_disk
    old = models / "model.json"
    old.write_text("the previous model")
    r = run_train("-o", str(old))
    rescued = [spare / f for f in os.listdir(spare)]
    assert len(rescued) == 1 and rescued[0].name.startswith("microgpt-rescued-model-"), os.listdir(spare)
    one_error_line(r, rf"^error: {old}: cannot save: No space left on device; the trained model was saved to "
                      rf"{rescued[0]} instead: move it to {old}, or continue from it with --resume --output "
                      rf"{rescued[0]}$")
    assert old.read_text() == "the previous model" and os.listdir(models) == ["model.json"]
    assert checkpoint.load(str(rescued[0])).train_state["step"] == STEPS
    again = run_train("--resume", "--output", str(rescued[0]))
    assert again.code == 0 and "nothing to resume" in again.stdout, again


def test_when_the_rescue_fails_too_the_error_says_what_to_pass(run_train, full_disk, monkeypatch):
    models, spare = full_disk
    def every_disk_full(f, tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output_path, "_flush_to_disk", every_disk_full)
    r = run_train("-o", str(models / "model.json"))
    one_error_line(r, rf"cannot save: No space left on device; a copy in {spare} failed too \(No space left on "
                      r"device\): nothing was saved; free some space or pass --output PATH on another disk, and "
                      r"train again$")
    assert os.listdir(spare) == [] and os.listdir(models) == []


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_script_refuses_a_bad_result_path_before_its_work(tmp_path, capsys):
    fifo(tmp_path)
    bad = str(tmp_path / "out.json")
    (tmp_path / "plain").write_text("x")
    assert load_script("benchmark_train").main(["--backend", "python", "--json", bad]) == 1
    assert load_script("thread_sweep").main(["--backends", "python", "-o", bad]) == 1
    assert report.main(["--sweep", bad, "--reports", str(tmp_path / "plain" / "r")]) == 1
    with pytest.raises(SystemExit, match=r"^error: --reports .*plain: .*plain is a file, not a folder$"):
        load_script("make_report").main(["--reports", str(tmp_path / "plain")])
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert out.out == "" and len(lines) == 3, out
    assert lines[0] == lines[1].replace("--output", "--json") == (
        f"error: --json {bad}: is a named pipe (FIFO), not a regular file; give the path of a file (only regular "
        "files are replaced)")
    assert lines[2].startswith("error: --reports ") and lines[2].endswith("plain is a file, not a folder")


def test_pyperf_train_refuses_a_result_path_inside_a_file(tmp_path):
    """pyperf writes -o itself, after every worker has run: the path is checked before the first one starts."""
    pytest.importorskip("pyperf")
    (tmp_path / "plain").write_text("x")
    r = run_cli([os.path.join(ROOT, "scripts", "pyperf_train.py"), "-o", str(tmp_path / "plain" / "r.json")],
                timeout=120)
    assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr == f"error: -o {tmp_path}/plain/r.json: {tmp_path}/plain is a file, not a folder\n"


@pytest.fixture
def report_inputs(tmp_path):
    losses, peaks = tmp_path / "losses.json", tmp_path / "peaks.json"
    losses.write_text('{"what": "three steps", "curves": {"python float64": [3.0, 2.9, 2.8]}}')
    peaks.write_text('{"float64": {"1": 1.0, "all": 2.0}, "float32": {"1": 2.0, "all": 4.0}}')
    return ["--losses", str(losses), "--peaks-json", str(peaks), "--asv", str(tmp_path / "no-asv")]


def test_report_latest_through_a_link_replaces_the_folder_it_points_to(tmp_path, report_inputs, capsys):
    pytest.importorskip("matplotlib")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "stale.md").write_text("an older report")
    reports = tmp_path / "reports"
    reports.mkdir()
    os.symlink(elsewhere, reports / "latest")
    assert report.main([*report_inputs, "--reports", str(reports), "--latest"]) == 0
    assert os.path.islink(reports / "latest")
    assert "stale.md" not in os.listdir(elsewhere) and "report.md" in os.listdir(elsewhere)


def test_report_latest_that_is_a_file_is_refused_before_any_work(tmp_path, report_inputs, capsys):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "latest").write_text("not a folder")
    assert report.main([*report_inputs, "--reports", str(reports), "--latest"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --latest {reports}/latest: {reports}/latest is a file, not a folder\n"
    assert os.listdir(reports) == ["latest"]


def test_a_rescue_says_to_move_the_model_onto_the_links_target_not_the_link(tmp_path, run_train, full_disk):
    models, spare = full_disk
    (models / "real.json").write_text("the previous model")
    os.symlink("real.json", models / "model.json")
    r = run_train("-o", str(models / "model.json"))
    one_error_line(r, rf"instead: move it to {models}/real.json, or continue")
    assert os.path.islink(models / "model.json") and (models / "real.json").read_text() == "the previous model"
