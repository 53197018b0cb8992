"""The report and the scripts that feed it: thread_sweep's grid, one real sweep run, the report from fixed inputs."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from conftest import ROOT, run_cli
from microgpt import report


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
    # what the process saw, not only what was asked for
    assert result["metadata"]["threads"]["env"]["NUMBA_NUM_THREADS"] == "1"
    assert data["metadata"]["git"] and data["metadata"]["cpu"]


def fake_inputs(tmp_path):
    def result(backend, dtype, steps_per_s):
        return {"steps_per_s": steps_per_s, "tokens_per_s": 7 * steps_per_s, "model_gflops_per_s": steps_per_s * 1.6e-4,
                "compile_s": 0.5, "timed_steps": 100, "final_loss": 2.5, "load_average_1min": [1.0, 1.2],
                "numba_threading_layer": "not started"}

    runs = []
    for backend, dtype, base in (("python", "float64", 8.0), ("numpy", "float64", 6000.0), ("numpy", "float32", 7000.0)):
        for blas, numba in ((1, 1), (2, 2)):
            cfg = {"scenario": "names", "backend": backend, "dtype": dtype, "blas_threads": blas,
                   "numba_threads": numba, "threading_layer": None, "skipped": None}
            runs.append({"config": cfg, "result": result(backend, dtype, base * (1 + 0.1 * blas)), "data": "x"})
    runs.append({"config": {"scenario": "names", "backend": "python", "dtype": "float32", "blas_threads": 1,
                            "numba_threads": 1, "threading_layer": None, "skipped": "no float32"}})
    meta = {"date": "2030-01-02T03:04:05+00:00", "cpu": "Test CPU", "usable_cores": 2, "versions": {},
            "git": {"commit": "abcdef1234567890", "dirty": False}}
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"kind": "microgpt-thread-sweep", "metadata": meta, "runs": runs}))
    kernels = tmp_path / "kernels.json"
    kernels.write_text(json.dumps({"benchmarks": [
        {"group": "matmul", "name": "test_matmul_forward[names-float64]", "params": {},
         "extra_info": {"size": "names", "dtype": "float64", "flops": 2e6},
         "stats": {"median": 1e-3, "iqr": 1e-5, "rounds": 9, "data": [1e-3] * 9}},
        {"group": "xent", "name": "test_cross_entropy_forward_and_backward[names-float32]", "params": {},
         "extra_info": {"size": "names", "dtype": "float32", "flops": None}, "stats": {"median": 2e-5, "iqr": 1e-6, "rounds": 9}},
    ]}))
    losses = tmp_path / "losses.json"
    losses.write_text(json.dumps({"what": "test curves", "curves": {"python float64": [3.0, 2.9, 2.8],
                                                                     "numpy float64": [3.0, 2.9, 2.75]}}))
    peaks = tmp_path / "peaks.json"
    peaks.write_text(json.dumps({"float64": {"1": 10.0, "all": 20.0}, "float32": {"1": 20.0, "all": 40.0}}))
    return sweep, kernels, losses, peaks


def test_report_from_fixed_inputs(tmp_path):
    pytest.importorskip("matplotlib")
    sweep, kernels, losses, peaks = fake_inputs(tmp_path)
    reports = tmp_path / "reports"
    asv = tmp_path / "asv" / "machine"
    asv.mkdir(parents=True)
    (asv / "c0ffee00-env.json").write_text(json.dumps({
        "commit_hash": "c0ffee0011", "env_name": "existing-py", "date": 1, "result_columns": ["result", "params"],
        "results": {"training.TrainStep.time_step": [[2.5e-4, float("nan")],
                                                     [["'numpy'", "'python'"], ["'float64'"], ["'names'"]]]}}))
    code = report.main(["--sweep", str(sweep), "--kernels", str(kernels), "--losses", str(losses),
                        "--peaks-json", str(peaks), "--asv", str(asv.parent), "--reports", str(reports),
                        "--latest"])
    assert code == 0
    out = reports / "2030-01-02-abcdef12"
    text = (out / "report.md").read_text()
    for png in report.PLOTS.values():
        assert 1000 < (out / png).stat().st_size < 200_000, png
        assert f"]({png})" in text
    assert (reports / "latest" / "report.md").read_text() == text
    # headline: best numpy float64 is blas 2 / numba 2 at 7,200 steps/s = 900x python's best (8.0 * 1.2 = 9.6 -> 750x)
    row = next(line for line in text.splitlines() if line.startswith("| `numpy` float64"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["6,600", "7,200", "blas 2 / numba 2"]
    assert cells[7] == "750x"
    assert cells[6] == f"{100 * 7200 * 1.6e-4 / 20.0:.2f} %"  # MFU against the all-core float64 peak
    assert "`python` float32: no float32" in text
    assert "2 GFLOP/s" in text or "| 2 |" in text  # matmul: 2e6 FLOPs in 1 ms
    assert "5.00e-02 over 3 steps" in text  # loss curve difference to python
    assert (out / "data" / "sweep.json").exists()
    assert "commit c0ffee00" in text and "| numpy float64 names | 250.0 µs |" in text
    assert "python float64 names" not in text  # asv's NaN: skipped in setup
    # the committed copies keep the summaries, not every sample
    copied = json.loads((out / "data" / "kernels.json").read_text())
    assert copied["benchmarks"][0]["stats"] == {"median": 1e-3, "iqr": 1e-5, "rounds": 9}


def test_report_needs_an_input(capsys):
    assert report.main(["--asv", "/nonexistent"]) == 2
    assert "nothing to report" in capsys.readouterr().err


def test_the_newest_asv_run_is_read_not_the_newest_commit(tmp_path):
    machine = tmp_path / "vm"
    machine.mkdir()
    columns = ["result", "params", "version", "started_at"]
    for name, commit_date, started, value in (("old-run.json", 9, 100, 1.0), ("new-run.json", 1, 200, 2.0)):
        (machine / name).write_text(json.dumps({"date": commit_date, "result_columns": columns, "results": {
            "training.TrainStep.time_step": [[value], [["'numpy'"]], "v", started]}}))
    # a newer run of other benchmarks only (asv run --bench kernels) does not hide the training results
    (machine / "kernels-only.json").write_text(json.dumps({"date": 1, "result_columns": columns, "results": {
        "kernels.Matmul.time_forward": [[1.0], [["'names'"]], "v", 300]}}))
    path, rows = report.asv_rows(str(tmp_path))
    assert path.endswith("new-run.json") and rows[0]["value"] == 2.0


def test_asv_results_are_read(tmp_path):
    machine = tmp_path / "vm"
    machine.mkdir()
    (machine / "machine.json").write_text("{}")
    (machine / "abc-env.json").write_text(json.dumps({
        "date": 5, "result_columns": ["result", "params", "version"],
        "results": {"training.TrainStep.time_step": [[1e-3, None], [["'numpy'", "'python'"], ["'names'"]], "v"],
                    "kernels.Matmul.time_forward": [[1.0], [["'a'"]], "v"]}}))
    path, rows = report.asv_rows(str(tmp_path))
    assert path.endswith("abc-env.json")
    assert rows == [{"name": "training.TrainStep.time_step", "params": ["numpy", "names"], "value": 1e-3},
                    {"name": "training.TrainStep.time_step", "params": ["python", "names"], "value": None}]
