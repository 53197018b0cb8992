"""microgpt.threads: the thread policy's report never starts Numba's pool; thread_env sets every variable."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from microgpt import threads


def test_thread_settings_never_start_numbas_pool():
    pytest.importorskip("numba")
    code = """
import json, numba, numpy as np
from microgpt import threads
before = threads.thread_settings()
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
print(json.dumps([before, started, threads.thread_settings()]))
"""
    proc = run_cli(["-c", code], env={"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    before, started, after = json.loads(proc.stdout)
    assert not started, "thread_settings() started Numba's thread pool"
    assert before["numba_threading_layer"] == "not started" and before["numba_num_threads"] == 2
    assert before["env"]["OMP_NUM_THREADS"] == "1" and before["env"]["NUMBA_NUM_THREADS"] == "2"
    assert after["numba_threading_layer"] == "workqueue" and after["numba_num_threads"] == 2


def test_thread_env_sets_every_variable():
    env = threads.thread_env(2)
    assert set(env) == set(threads.BLAS_VARS) | {"NUMBA_NUM_THREADS"} and set(env.values()) == {"2"}


def test_torch_threads_follow_numba_num_threads_and_share_the_cores_under_torchrun(monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert threads.torch_threads() == 3 == threads.configured_threads()
    monkeypatch.delenv("NUMBA_NUM_THREADS")
    assert threads.torch_threads() == max(1, threads.usable_cores() // 2)
    assert threads.configured_threads() == threads.usable_cores()


def test_the_threading_layer_is_workqueue_unless_the_user_chose_one(monkeypatch):
    numba = pytest.importorskip("numba")
    monkeypatch.delenv("NUMBA_THREADING_LAYER", raising=False)
    monkeypatch.setattr(numba.config, "THREADING_LAYER", "default")
    threads.default_threading_layer()
    assert numba.config.THREADING_LAYER == "workqueue"
    monkeypatch.setenv("NUMBA_THREADING_LAYER", "omp")
    monkeypatch.setattr(numba.config, "THREADING_LAYER", "omp")
    threads.default_threading_layer()
    assert numba.config.THREADING_LAYER == "omp"
