"""microgpt.machine: the matmul peak, the run's metadata, and what Numba's cache did."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from microgpt import machine, threads


def test_matmul_peak_is_a_positive_rate():
    pytest.importorskip("numpy")
    assert machine.matmul_peak_gflops("float32", n=64, repeats=3) > 0


def test_peak_probes_run_in_a_process_per_thread_count():
    pytest.importorskip("numpy")
    peaks = machine.probe_peaks(threads=(1, None), n=64, repeats=2)
    assert set(peaks) == {"float64", "float32"}
    assert all(set(p) == {"1", "all"} and min(p.values()) > 0 for p in peaks.values())


def test_mfu_is_taken_against_the_higher_probe():
    # a busy second core can make the all-core probe the slower one
    assert machine.peak_of({"float64": {"1": 60.0, "all": 45.0}}, "float64") == 60.0
    assert machine.peak_of({"float64": {"1": 60.0, "all": 110.0}}, "float64") == 110.0
    assert machine.peak_of({}, "float32") is None


def test_the_machine_flops_and_threads_work_without_numpy_or_numba():
    code = ("import json; from microgpt import flops, machine, threads; from microgpt.config import load_scenario; "
            "m = machine.run_metadata(); print(json.dumps([flops.flops_per_token(load_scenario('names').model, 27), "
            "m['blas'], threads.thread_settings()['numba_threading_layer'], "
            "__import__('sys').modules['numpy'] is not None]))")
    proc = run_cli(["-c", f"import sys; sys.modules['numpy'] = None; sys.modules['numba'] = None; {code}"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [22656, None, None, False]


def test_run_metadata_has_what_a_result_needs():
    meta = machine.run_metadata()
    for key in ("date", "cpu", "cores", "usable_cores", "python", "versions", "blas", "threads", "git"):
        assert key in meta
    assert set(meta["threads"]["env"]) == set(threads.THREAD_VARS)
    json.dumps(meta)  # it goes into JSON files


CACHE_PROBE = """
import json, numpy as np
from microgpt import machine
from microgpt.kernels.adam import adam_step_fused
before = machine.numba_cache_stats()
x = np.zeros(8)
adam_step_fused(x.copy(), x.copy(), x.copy(), x.copy(), 0.01, 0.9, 0.99, 1e-8, 0)
after = machine.numba_cache_stats()
print(json.dumps({"before": before, "after": after, "kind": machine.compile_kind(after)}))
"""


def test_numba_cache_stats_tell_a_compile_from_a_cache_load(tmp_path):
    pytest.importorskip("numba")
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}  # empty: the first process compiles, the second loads
    first, second = (run_cli(["-c", CACHE_PROBE], env=env) for _ in range(2))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    cold, warm = (json.loads(r.stdout.splitlines()[-1]) for r in (first, second))
    assert cold["before"] == {"hits": 0, "misses": 0} and cold["after"]["misses"] >= 1
    assert cold["kind"] == "compiled"
    assert warm["after"]["hits"] >= 1 and warm["after"]["misses"] == 0 and warm["kind"] == "cache load"


def test_compile_kind_without_numba_work():
    assert machine.compile_kind(None) == machine.compile_kind({"hits": 0, "misses": 0}) == "none"
    assert machine.compile_kind({"hits": 5, "misses": 1}) == "compiled"
