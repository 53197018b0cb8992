"""The asv suite runs as asv would call it: setup, then the benchmark, on the smallest parameters.

`asv check --python=same` (CI) checks the suite's structure; this checks that
the benchmarks do what they say: skip by raising NotImplementedError in setup,
time nothing uncompiled, and produce sensible tracked numbers.
"""

from __future__ import annotations

import inspect
import sys

import pytest

from conftest import ROOT

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import common, kernels, startup, training  # noqa: E402

needs_numba = pytest.mark.skipif(common.importlib.util.find_spec("numba") is None, reason="needs numba")


def bench_methods(cls):
    return [name for name, _ in inspect.getmembers(cls, inspect.isfunction)
            if name.startswith(("time_", "track_", "peakmem_", "timeraw_"))]


@needs_numba
@pytest.mark.parametrize("cls", [kernels.Matmul, kernels.Attention, kernels.CausalAttention, kernels.RMSNorm,
                                 kernels.CrossEntropy, kernels.Adam])
def test_kernel_benchmarks_run_on_their_first_parameters(cls):
    params = [p[0] for p in cls.params]
    bench = cls()
    bench.setup(*params)
    methods = bench_methods(cls)
    assert methods
    for name in methods:
        getattr(bench, name)(*params)


def test_params_are_the_same_whatever_is_installed():
    # skips happen in setup, so results line up across machines and commits
    assert training.TrainStep.params == (common.BACKENDS, common.DTYPES, common.SCENARIOS)
    assert common.BACKENDS == ["python", "numpy", "numpy_batched", "fused"]


@pytest.mark.parametrize("backend,dtype,scenario,why", [
    ("python", "float32", "names", "has no float32"),
    ("python", "float64", "alice", "names only"),
])
def test_impossible_combinations_are_skipped_in_setup(backend, dtype, scenario, why):
    with pytest.raises(NotImplementedError, match=why):
        training.TrainStep().setup(backend, dtype, scenario)


def test_a_missing_backend_is_skipped_in_setup(monkeypatch):
    import microgpt.backends

    monkeypatch.setattr(microgpt.backends, "is_available", lambda name: False)
    with pytest.raises(NotImplementedError, match="not installed or not written yet"):
        training.TrainStep().setup("fused", "float64", "names")


@needs_numba
def test_training_benchmarks_on_numpy_names():
    step = training.TrainStep()
    step.setup("numpy", "float64", "names")
    start = step.step
    step.time_step("numpy", "float64", "names")
    assert step.step == start + 1

    tp = training.Throughput()
    peaks = {"float64": 1.0, "float32": 2.0}  # GFLOP/s: a made-up peak keeps the test fast
    tp.setup(peaks, "numpy", "float64", "names")
    rate = tp.track_tokens_per_s(peaks, "numpy", "float64", "names")
    mfu_percent = tp.track_mfu(peaks, "numpy", "float64", "names")
    assert rate > 100
    # MFU in percent of 1 GFLOP/s is the model GFLOP/s x 100: ~22,656 FLOPs per token at most on names
    assert 0 < mfu_percent < rate * 22656 / 1e9 * 100 * 2


def test_timeraw_code_compiles():
    stmt, setup = startup.timeraw_import_microgpt()
    compile(stmt, "stmt", "exec")
    compile(setup, "setup", "exec")
    for cls, target in ((startup.KernelColdStart, "attention_fused"), (startup.BackendColdStart, "numpy")):
        bench = cls()
        bench.cache_dir = "/tmp/unused"
        for cache in ("none", "disk"):
            stmt, setup = bench.timeraw_start(target, cache)
            compile(stmt, "stmt", "exec")
            compile(setup, "setup", "exec")
            assert "NUMBA_CACHE_DIR" in setup
