"""Under CI, a check that did not run is a failure, not a green skip (loaded by conftest.py).

The golden, equivalence and thread-determinism tests need the data in ../shared/data (or
$MICROGPT_DATA_DIR) and Numba; without them they skip, which is right on a user's machine and
wrong in CI, where a skip would hide that nothing was compared. With CI set (CI=true, as CI
services and .ci/run set it), a skip in those groups becomes a failure whose one line says which
test and why it skipped. Other skips (a GPU-only case, say) stay skips.
"""

from __future__ import annotations

import fnmatch
import os

import pytest

from microgpt import envvars

# nodeid patterns of the checks that must run in CI: the reference run, every backend against
# another (tests/backends), and every test that compares thread counts; the fused backend's group
# and slot tests live with the kernels they test (tests/kernels/test_fused_batch.py and
# test_fused_train.py) and stay guarded as they were in tests/backends
GUARDED = ("tests/test_reference.py::*", "tests/golden/*", "tests/backends/*", "*thread*",
           "tests/kernels/test_fused_batch.py::*", "tests/kernels/test_fused_train.py::*")


SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared",
                           "data")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def guarded(nodeid: str) -> bool:
    return any(fnmatch.fnmatchcase(nodeid, pattern) for pattern in GUARDED)


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _declared_skip(item) -> bool:
    """A test marked skipif/skip says up front where it cannot run (e.g. only without CUDA): not a lost check."""
    return any(True for name in ("skip", "skipif") for _ in item.iter_markers(name))


def _fail(report, what: str) -> None:
    reason = _skip_reason(report)
    report.outcome = "failed"
    report.longrepr = (f"CI: {what} skipped, so it checked nothing: {reason} "
                       "(CI needs ../shared/data or MICROGPT_DATA_DIR, numba and the extras installed)")


def pytest_configure(config):
    if not in_ci():
        return
    folder = envvars.folder("MICROGPT_DATA_DIR") or SHARED_DATA
    if not os.path.isdir(folder):
        raise pytest.UsageError(f"CI: no data folder {folder}: the golden, equivalence and thread-determinism tests "
                                "would all skip; place names.txt and alice.txt there or set MICROGPT_DATA_DIR")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and guarded(report.nodeid) and not _declared_skip(item):
        _fail(report, report.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # a module-level pytest.importorskip skips the whole file at collection
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and guarded(report.nodeid + "::"):
        _fail(report, f"every test of {report.nodeid}")
