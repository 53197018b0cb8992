"""tests/ci_guard.py: under CI a skipped golden/equivalence/thread test fails with its reason; elsewhere it skips."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT, cli_env

TESTS = '''
import pytest

def test_needs_data():
    pytest.skip("names.txt not found")

def test_runs():
    assert 1 + 1 == 2

@pytest.mark.skipif(True, reason="only without CUDA")
def test_declared():
    pass
'''


@pytest.fixture
def project(tmp_path):
    """A tiny project: one guarded test file (tests/backends/) and one unguarded, with the same tests."""
    (tmp_path / "tests" / "backends").mkdir(parents=True)
    (tmp_path / "tests" / "backends" / "test_equiv.py").write_text(TESTS)
    (tmp_path / "tests" / "test_other.py").write_text(TESTS)
    (tmp_path / "data").mkdir()
    return tmp_path


def pytest_in(folder, ci: str | None, data: str) -> subprocess.CompletedProcess:
    env = cli_env({"PYTHONPATH": os.path.join(ROOT, "tests") + os.pathsep + ROOT, "MICROGPT_DATA_DIR": data})
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "ci_guard", "-p", "no:cacheprovider",
                           "-p", "no:benchmark", "tests"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)


def test_outside_ci_the_skips_stay_skips_with_their_reason(project):
    r = pytest_in(project, None, str(project / "data"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed, 4 skipped" in r.stdout and "names.txt not found" in r.stdout


def test_under_ci_a_guarded_skip_fails_and_says_why(project):
    r = pytest_in(project, "true", str(project / "data"))
    assert r.returncode == 1, r.stdout + r.stderr
    # the guarded file's plain skip fails; its declared skipif and the unguarded file's skips stay skips
    assert "1 failed, 2 passed, 3 skipped" in r.stdout, r.stdout
    assert ("CI: tests/backends/test_equiv.py::test_needs_data skipped, so it checked nothing: names.txt not found"
            in r.stdout)


def test_under_ci_a_guarded_file_skipped_at_import_stops_the_run(project):
    (project / "tests" / "backends" / "test_needs_pkg.py").write_text(
        'import pytest\npytest.importorskip("no_such_package_here")\n\ndef test_x():\n    pass\n')
    r = pytest_in(project, "true", str(project / "data"))
    assert r.returncode != 0 and "Interrupted: 1 error during collection" in r.stdout, r.stdout
    assert ("CI: every test of tests/backends/test_needs_pkg.py skipped, so it checked nothing: could not import "
            "'no_such_package_here'") in r.stdout
    assert pytest_in(project, None, str(project / "data")).returncode == 0  # outside CI: skipped


def test_under_ci_no_data_folder_is_one_line(project):
    r = pytest_in(project, "true", str(project / "missing"))
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == (
        f"ERROR: CI: no data folder {project / 'missing'}: the golden, equivalence and thread-determinism tests "
        "would all skip; place names.txt and alice.txt there or set MICROGPT_DATA_DIR")


@pytest.mark.parametrize("value,on", [("true", True), ("1", True), ("false", False), ("", False)])
def test_what_counts_as_ci(monkeypatch, value, on):
    import ci_guard

    monkeypatch.setenv("CI", value)
    assert ci_guard.in_ci() is on


def test_the_fused_kernels_group_and_slot_tests_are_guarded_where_they_moved():
    """They were in tests/backends; in tests/kernels they still fail CI when they skip, the other kernels' do not."""
    import ci_guard

    assert ci_guard.guarded("tests/kernels/test_fused_batch.py::test_groups_depend_on_the_step_alone_and_hold_every_"
                            "document_once[2-16]")
    assert ci_guard.guarded("tests/kernels/test_fused_train.py::test_slots_take_contiguous_blocks_that_share_the_"
                            "documents_evenly[2]")
    assert ci_guard.guarded("tests/kernels/test_fused_batch.py::")  # a module skipped at import, as collection names it
    assert not ci_guard.guarded("tests/kernels/test_matmul.py::test_forward_matches_reference")
