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
    assert common.BACKENDS == ["python", "numpy", "numpy_batched", "fused", "torch"]


@pytest.mark.parametrize("backend,dtype,scenario,why", [
    ("python", "float32", "names", "has no float32"),
    ("python", "float64", "alice", "names only"),
])
def test_impossible_combinations_are_skipped_in_setup(backend, dtype, scenario, why):
    with pytest.raises(NotImplementedError, match=why):
        training.TrainStep().setup(backend, dtype, scenario)


def test_a_missing_backend_is_skipped_in_setup(monkeypatch):
    from microgpt.backends import registry

    monkeypatch.setattr(registry, "is_available", lambda name: False)
    with pytest.raises(NotImplementedError, match="not installed or not written yet"):
        training.TrainStep().setup("fused", "float64", "names")


@needs_numba
def test_training_benchmarks_on_numpy_names():
    from microgpt.config import load_scenario
    from microgpt.bench import STEP_CHUNK
    from microgpt.flops import flops_per_token

    step = training.TrainStep()
    step.setup("numpy", "float64", "names")
    start = step.step
    step.time_chunk("numpy", "float64", "names")
    assert step.step == start + STEP_CHUNK  # one call of the chunk every timing tool uses

    peaks = {"float64": 1.0, "float32": 2.0}  # GFLOP/s: a made-up peak keeps the test fast
    run = training.measure_throughput("numpy", "float64", "names", peaks, min_seconds=0.05)
    key = ("numpy", "float64", "names")
    tp = training.Throughput()
    tp.setup({key: run}, *key)
    rate, mfu_percent = tp.track_tokens_per_s({key: run}, *key), tp.track_mfu({key: run}, *key)
    assert rate == run["tokens_per_s"] > 100
    # one timed run behind both: MFU is that rate times FLOPs per token over the 1 GFLOP/s peak, and the
    # names documents' FLOPs per token lie between those of a 1-position and a 16-position document
    cfg = load_scenario("names").model
    low, high = (rate * flops_per_token(cfg, 27, n) / 1e9 * 100 for n in (1, 16))
    assert low <= mfu_percent <= high
    assert mfu_percent == pytest.approx(100 * rate * run["flops_per_token"] / 1e9, rel=1e-12)


def test_throughput_skips_in_setup_what_its_cached_run_skipped():
    key = ("python", "float32", "names")
    with pytest.raises(NotImplementedError, match="has no float32"):
        training.Throughput().setup({key: {"skip": "backend 'python' has no float32"}}, *key)


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


def test_every_backend_has_a_start_benchmark_and_only_numbas_have_a_warm_cache_row():
    from microgpt.backends.registry import REGISTRY

    assert startup.BackendColdStart.params[0] == list(REGISTRY)
    bench = startup.BackendColdStart()
    for target in ("python", "torch"):
        with pytest.raises(NotImplementedError):
            bench.check(target, "disk")
    bench.check("python", "none")  # runs: the python backend needs nothing
    bench.check("fused", "disk")
