"""microgpt/envvars.py: every MICROGPT_* variable is read there, and a bad value is one line naming it."""

from __future__ import annotations

import os
import re

import pytest

from conftest import ROOT, run_cli
from microgpt import envvars
from microgpt.errors import MicrogptError


def test_whole_numbers(monkeypatch):
    name = "MICROGPT_PARALLEL_MIN_WORK"
    monkeypatch.delenv(name, raising=False)
    assert envvars.whole_number(name, 7) == 7
    for value, expected in (("0", 0), ("4096", 4096), (" 12 ", 12), ("", 7)):
        monkeypatch.setenv(name, value)
        assert envvars.whole_number(name, 7) == expected
    for value, why in (("1M", "is not a whole number"), ("2.5", "is not a whole number"), ("-1", "is negative")):
        monkeypatch.setenv(name, value)
        with pytest.raises(MicrogptError, match=rf"^environment variable {name}='{re.escape(value)}' {why}: it "
                                                rf"takes a whole number >= 0 \(.+\); change it or unset it$"):
            envvars.whole_number(name, 7)


@pytest.mark.parametrize("value,expected", [("1", True), ("0", False), ("", False), (None, False)])
def test_flags(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("MICROGPT_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("MICROGPT_OFFLINE", value)
    assert envvars.flag("MICROGPT_OFFLINE") is expected


@pytest.mark.parametrize("value", ["yes", "true", "2", "on"])
def test_a_flag_is_1_or_0(monkeypatch, value):
    monkeypatch.setenv("MICROGPT_VERIFY_JIT", value)
    with pytest.raises(MicrogptError, match=rf"MICROGPT_VERIFY_JIT='{value}' is neither 1 nor 0"):
        envvars.flag("MICROGPT_VERIFY_JIT")


def test_choices(monkeypatch):
    name = "MICROGPT_HYPOTHESIS_PROFILE"
    monkeypatch.setenv(name, "ci-long")
    assert envvars.choice(name, ("a", "ci-long"), "a") == "ci-long"
    monkeypatch.setenv(name, "ci_long")
    with pytest.raises(MicrogptError, match=r"'ci_long' is not one of a, ci-long"):
        envvars.choice(name, ("a", "ci-long"), "a")


def test_a_data_folder_may_be_missing_but_not_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("MICROGPT_DATA_DIR", str(tmp_path / "not-yet"))
    assert envvars.folder("MICROGPT_DATA_DIR") == str(tmp_path / "not-yet")  # the data lookup says what to place
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("MICROGPT_DATA_DIR", str(tmp_path / "f"))
    with pytest.raises(MicrogptError, match="is a file, not a folder"):
        envvars.folder("MICROGPT_DATA_DIR")


def test_an_unlisted_name_is_a_bug_not_a_default():
    with pytest.raises(KeyError):
        envvars.flag("MICROGPT_" + "NO_SUCH_THING")  # split: the scan below reads this file too


def _source_files():
    for top in ("microgpt", "scripts", "tests", "benchmarks"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(folder, f)


def test_every_variable_the_code_reads_is_listed_and_read_only_here():
    read_elsewhere, unlisted = [], set()
    for path in _source_files():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        unlisted |= set(re.findall(r"\bMICROGPT_[A-Z_]+[A-Z]\b", text)) - set(envvars.VARIABLES)
        if path.endswith(os.path.join("microgpt", "envvars.py")):
            continue
        # reading one straight from the environment skips the checks (setting one, in tests, is fine)
        read_elsewhere += [f"{os.path.relpath(path, ROOT)}: {m}"
                           for m in re.findall(r"os\.environ\.get\(\s*[\"']MICROGPT_\w+|getenv\(\s*[\"']MICROGPT_\w+"
                                               r"|os\.environ\[[\"']MICROGPT_\w+[\"']\](?!\s*=)", text)]
    assert not unlisted, f"MICROGPT_* names not in envvars.VARIABLES: {sorted(unlisted)}"
    assert not read_elsewhere, read_elsewhere


def test_a_bad_kernel_threshold_stops_any_command_with_one_line(tmp_path):
    # the python backend never imports the kernel that reads it: the check at start-up still catches it
    r = run_cli(["-m", "microgpt.train", "--backend", "python", "--steps", "1", "-o", str(tmp_path / "m.json")],
                env={"MICROGPT_PARALLEL_MIN_WORK": "lots"})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error: environment variable MICROGPT_PARALLEL_MIN_WORK='lots' is not a whole number")
    assert r.stderr.count("\n") == 1


def test_importing_a_kernel_with_a_bad_threshold_names_the_variable():
    pytest.importorskip("numba")
    r = run_cli(["-c", "import microgpt.kernels.causal_attention"],
                env={"MICROGPT_CAUSAL_PARALLEL_MIN_SCORES": "-5"})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith(
        "microgpt.errors.MicrogptError: environment variable MICROGPT_CAUSAL_PARALLEL_MIN_SCORES='-5' is negative")
