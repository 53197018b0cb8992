"""scripts/thread_sweep.py: the grid of settings it runs, and one real sweep run end to end."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from conftest import ROOT, run_cli


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_grid_covers_every_setting_and_layers_only_where_they_matter():
    sweep = load_script("thread_sweep")
    args = sweep.build_parser().parse_args(["--scenarios", "names", "alice", "--backends", "python", "numpy",
                                            "--layers", "workqueue", "omp"])
    runs = sweep.configurations(args)
    numpy_names = [r for r in runs if r["backend"] == "numpy" and r["scenario"] == "names"]
    # 2 dtypes x (blas 1, 2) x (numba 1; numba 2 x 2 layers)
    assert len(numpy_names) == 2 * 2 * 3
    assert {r["threading_layer"] for r in numpy_names if r["numba_threads"] == 1} == {None}
    assert {r["threading_layer"] for r in numpy_names if r["numba_threads"] == 2} == {"workqueue", "omp"}
    python = [r for r in runs if r["backend"] == "python"]
    assert {r["threading_layer"] for r in python} == {None}
    assert all(r["skipped"] for r in python if r["dtype"] == "float32" or r["scenario"] == "alice")
    assert all(not r["skipped"] for r in python if r["dtype"] == "float64" and r["scenario"] == "names")
    env = sweep.run_env(numpy_names[-1])
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["NUMBA_NUM_THREADS"] == "2" and env["NUMBA_THREADING_LAYER"] == "omp"


def test_one_sweep_run_end_to_end(tmp_path):
    pytest.importorskip("numba")
    out = tmp_path / "sweep.json"
    proc = run_cli(["scripts/thread_sweep.py", "--scenarios", "names", "--backends", "numpy", "--dtypes", "float64",
                    "--blas-threads", "1", "--numba-threads", "1", "--steps", "20", "-o", str(out)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    (run,) = data["runs"]
    assert run["env"]["NUMBA_NUM_THREADS"] == "1" and run["env"]["OPENBLAS_NUM_THREADS"] == "1"
    result = run["result"]
    assert result["backend"] == "numpy" and result["timed_steps"] == 15 and result["steps_per_s"] > 0
    assert result["p25_step_s"] <= result["median_step_s"] <= result["p75_step_s"]
    assert result["compile_kind"] in ("compiled", "cache load")
    # the peak MFU is taken against, probed with the sweep; and a compile from an empty Numba cache
    assert data["peaks_gflops"]["float64"]["1"] > 0 and data["peaks_gflops"]["float32"]["all"] > 0
    (cold,) = data["cold_compile"]
    assert (cold["backend"], cold["dtype"], cold["compile_kind"]) == ("numpy", "float64", "compiled")
    assert cold["compile_s"] > 0
    # what the process saw, not only what was asked for
    assert result["metadata"]["threads"]["env"]["NUMBA_NUM_THREADS"] == "1"
    assert data["metadata"]["git"] and data["metadata"]["cpu"]
