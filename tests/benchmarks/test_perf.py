"""microgpt.perf: the FLOP count, MFU, thread settings, metadata and the benchmark data."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from microgpt import perf
from microgpt.config import config_from_dict, load_scenario
from microgpt.params import param_shapes


def counted_flops(model, V, n):
    """Forward+backward FLOPs of one document, counted operation by operation (forward x 3)."""
    forward = 0
    for t in range(n):  # position t
        for name, (rows, cols) in param_shapes(model, V).items():
            if name not in ("wte", "wpe"):  # looked up, not multiplied
                forward += 2 * rows * cols
        for _ in range(model.n_layer):
            for _ in range(model.n_head):
                hd = model.n_embd // model.n_head
                forward += 2 * hd * (t + 1)  # scores q.k over the t+1 visible keys
                forward += 2 * hd * (t + 1)  # sum of att * v
    return 3 * forward  # the backward of y = W x is two products of the same size (dx and dW)


@pytest.mark.parametrize("model", [dict(n_embd=16, n_head=4, n_layer=1, block_size=16),
                                   dict(n_embd=32, n_head=4, n_layer=2, block_size=128),
                                   dict(n_embd=8, n_head=1, n_layer=3, block_size=5)])
@pytest.mark.parametrize("n", [1, 5])
def test_flops_match_an_operation_count(model, n):
    m = config_from_dict({"model": model}).model
    V = 27
    n = min(n, m.block_size)
    assert perf.flops_per_doc(m, V, n) == counted_flops(m, V, n)
    assert perf.flops_for_docs(m, V, [n, n]) == 2 * counted_flops(m, V, n)
    # per token at seq_len n: the matmul part is per position, the attention part averages (n+1)/2 keys
    assert perf.flops_per_token(m, V, n) * n == counted_flops(m, V, n)


def test_flops_of_the_scenarios():
    names, alice = load_scenario("names").model, load_scenario("alice").model
    # names: 3,504 matmul weights (12 * 16^2 + 27 * 16); 6 * 3,504 + 6 * 1 * 16 * (16 + 1)
    assert perf.matmul_params(names, 27) == 3504
    assert perf.flops_per_token(names, 27) == 22656
    assert perf.flops_per_token(alice, 73) == 6 * (2 * 12 * 32 * 32 + 73 * 32) + 6 * 2 * 32 * 129
    with pytest.raises(ValueError):
        perf.flops_per_token(names, 27, seq_len=0)


def test_mfu():
    # 1e6 tokens/s x 1e4 FLOPs = 10 GFLOP/s, out of a 40 GFLOP/s peak
    assert perf.mfu(1e6, 1e4, 40.0) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        perf.mfu(1.0, 1.0, 0.0)


def test_matmul_peak_is_a_positive_rate():
    pytest.importorskip("numpy")
    assert perf.matmul_peak_gflops("float32", n=64, repeats=3) > 0


def test_peak_probes_run_in_a_process_per_thread_count():
    pytest.importorskip("numpy")
    peaks = perf.probe_peaks(threads=(1, None), n=64, repeats=2)
    assert set(peaks) == {"float64", "float32"}
    assert all(set(p) == {"1", "all"} and min(p.values()) > 0 for p in peaks.values())


def test_mfu_is_taken_against_the_higher_probe():
    # a busy second core can make the all-core probe the slower one
    assert perf.peak_of({"float64": {"1": 60.0, "all": 45.0}}, "float64") == 60.0
    assert perf.peak_of({"float64": {"1": 60.0, "all": 110.0}}, "float64") == 110.0
    assert perf.peak_of({}, "float32") is None


def test_perf_works_without_numpy_or_numba():
    code = ("import json, microgpt.perf as p; from microgpt.config import load_scenario; "
            "m = p.run_metadata(); print(json.dumps([p.flops_per_token(load_scenario('names').model, 27), "
            "m['blas'], p.thread_settings()['numba_threading_layer'], __import__('sys').modules['numpy'] is not None]))")
    proc = run_cli(["-c", f"import sys; sys.modules['numpy'] = None; sys.modules['numba'] = None; {code}"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [22656, None, None, False]


def test_thread_settings_never_start_numbas_pool():
    pytest.importorskip("numba")
    code = """
import json, numba, numpy as np
from microgpt import perf
before = perf.thread_settings()
try:
    numba.threading_layer()
    started = True
except ValueError:
    started = False
numba.config.THREADING_LAYER = "workqueue"
@numba.njit(parallel=True)
def total(a):
    s = 0.0
    for i in numba.prange(a.shape[0]):
        s += a[i]
    return s
total(np.ones(4))
print(json.dumps([before, started, perf.thread_settings()]))
"""
    proc = run_cli(["-c", code], env={"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    before, started, after = json.loads(proc.stdout)
    assert not started, "thread_settings() started Numba's thread pool"
    assert before["numba_threading_layer"] == "not started" and before["numba_num_threads"] == 2
    assert before["env"]["OMP_NUM_THREADS"] == "1" and before["env"]["NUMBA_NUM_THREADS"] == "2"
    assert after["numba_threading_layer"] == "workqueue" and after["numba_num_threads"] == 2


def test_run_metadata_has_what_a_result_needs():
    meta = perf.run_metadata()
    for key in ("date", "cpu", "cores", "usable_cores", "python", "versions", "blas", "threads", "git"):
        assert key in meta
    assert set(meta["threads"]["env"]) == set(perf.THREAD_VARS)
    json.dumps(meta)  # it goes into JSON files


def test_synthetic_data_stands_in_when_no_file_is_found(monkeypatch, tmp_path):
    monkeypatch.setattr(perf, "data_dirs", lambda extra=(): [str(tmp_path)])
    for scenario in ("names", "alice"):
        exp = perf.bench_experiment(scenario)
        assert exp.dataset.source == perf.SYNTHETIC_SOURCE
        assert len(exp.train_tokens) > 1000
        # the same documents as the file tools get from write_synthetic_data
        path = perf.write_synthetic_data(exp.cfg, str(tmp_path / "files"))
        assert perf.bench_experiment(scenario, extra_dirs=[str(tmp_path / "files")]).docs == exp.docs
        assert path.endswith(exp.cfg.data.file)
    lengths = [len(d) for d in perf.bench_experiment("alice").docs]
    assert max(lengths) == 128  # chunks of the alice shape


def test_bench_experiment_overrides_and_step_positions():
    exp = perf.bench_experiment("names", "float32", batch_size=2, num_steps=7)
    assert exp.cfg.training.dtype == "float32" and exp.cfg.training.num_steps == 7
    positions = perf.step_positions(exp, 0, 3)
    T = exp.cfg.model.block_size
    assert positions == [min(T, len(exp.train_tokens[i]) - 1) for i in range(6)]


CACHE_PROBE = """
import json, numpy as np
from microgpt import perf
from microgpt.kernels.adam import adam_step_fused
before = perf.numba_cache_stats()
x = np.zeros(8)
adam_step_fused(x.copy(), x.copy(), x.copy(), x.copy(), 0.01, 0.9, 0.99, 1e-8, 0)
after = perf.numba_cache_stats()
print(json.dumps({"before": before, "after": after, "kind": perf.compile_kind(after)}))
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
    assert perf.compile_kind(None) == perf.compile_kind({"hits": 0, "misses": 0}) == "none"
    assert perf.compile_kind({"hits": 5, "misses": 1}) == "compiled"


def test_percentile_interpolates_and_thread_env_sets_every_variable():
    from microgpt import perf

    assert perf.percentile([3.0, 1.0, 2.0], 0.5) == 2.0 and perf.percentile([1.0, 2.0], 0.25) == 1.25
    assert perf.percentile([7.0], 0.9) == 7.0
    env = perf.thread_env(2)
    assert set(env) == set(perf.BLAS_VARS) | {"NUMBA_NUM_THREADS"} and set(env.values()) == {"2"}
