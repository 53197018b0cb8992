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


def fake_result(steps_per_s, spread=0.01, compile_kind="cache load", load=(1.0, 1.2)):
    """A benchmark_train result: median step 1 / steps_per_s, step times' quartiles +- spread around it."""
    median = 1 / steps_per_s
    return {"steps_per_s": steps_per_s, "tokens_per_s": 7 * steps_per_s, "model_gflops_per_s": steps_per_s * 1.6e-4,
            "compile_s": 0.5, "compile_kind": compile_kind, "timed_steps": 100, "final_loss": 2.5,
            "load_average_1min": list(load), "numba_threading_layer": "not started", "median_step_s": median,
            "p25_step_s": median * (1 - spread), "p75_step_s": median * (1 + spread)}


def sweep_run(backend, dtype, blas, numba, result, scenario="names"):
    cfg = {"scenario": scenario, "backend": backend, "dtype": dtype, "blas_threads": blas, "numba_threads": numba,
           "threading_layer": None, "skipped": None}
    return {"config": cfg, "result": result, "data": "x"}


META = {"date": "2030-01-02T03:04:05+00:00", "cpu": "Test CPU", "usable_cores": 2, "versions": {},
        "git": {"commit": "abcdef1234567890", "dirty": False}}
PEAKS = {"float64": {"1": 10.0, "all": 20.0}, "float32": {"1": 20.0, "all": 40.0}}


def write_sweep(path, runs, peaks=PEAKS, cold=()):
    path.write_text(json.dumps({"kind": "microgpt-thread-sweep", "metadata": META, "peaks_gflops": peaks,
                                "cold_compile": list(cold), "runs": runs}))
    return path


def fake_inputs(tmp_path):
    runs = []
    for backend, dtype, base in (("python", "float64", 8.0), ("numpy", "float64", 6000.0), ("numpy", "float32", 7000.0)):
        for blas, numba in ((1, 1), (2, 2)):
            kind = "none" if backend == "python" else "cache load"
            runs.append(sweep_run(backend, dtype, blas, numba, fake_result(base * (1 + 0.1 * blas), compile_kind=kind)))
    runs.append({"config": {"scenario": "names", "backend": "python", "dtype": "float32", "blas_threads": 1,
                            "numba_threads": 1, "threading_layer": None, "skipped": "no float32"}})
    cold = [{"scenario": "names", "backend": "numpy", "dtype": "float64", "compile_s": 21.5, "compile_kind": "compiled"}]
    sweep = write_sweep(tmp_path / "sweep.json", runs, cold=cold)
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
    return sweep, kernels, losses


def never_probe(monkeypatch):
    def probe(*a, **k):
        raise AssertionError("the report probed the matmul peak itself")

    monkeypatch.setattr(report.perf, "probe_peaks", probe)


def headline_cells(text, start):
    row = next(line for line in text.splitlines() if line.startswith(start))
    return [c.strip() for c in row.strip("|").split("|")]


def fake_scaling() -> dict:
    """Two widths, two backends: enough for the Scaling section's three plots and its tables."""
    def point(width, backend, tokens_per_s):
        return {"status": "ok", "tokens_per_s": tokens_per_s, "tokens_per_s_p10": tokens_per_s * 0.9,
                "tokens_per_s_p90": tokens_per_s * 1.1, "us_per_token": 1e6 / tokens_per_s,
                "flops_per_token": 300.0 * width * width, "model_gflops_per_s": tokens_per_s * 300 * width * width / 1e9,
                "window_s": 0.5, "steps_per_window": 20, "num_params": 12 * width * width,
                "point": {"label": "centre" if width == 16 else f"n_embd={width}", "scenario": "names",
                          "n_embd": width, "n_head": 4, "n_layer": 1, "block_size": 16, "batch_size": 4,
                          "backend": backend, "dtype": "float32", "threads": 1}}
    points = [point(w, b, t) for w, b, t in [(16, "fused", 9e4), (16, "torch", 2e4), (64, "fused", 3e4),
                                             (64, "torch", 1.5e4)]]
    return {"meta": {"cpu": "fake cpu", "usable_cores": 2}, "grid": {"centre": {}},
            "roofs": {"matmul_gflops": {"float32": {"1": 50.0, "all": 90.0}}, "triad_gbytes_per_s": {"1": 5.0}},
            "points": {f"{p['point']['label']}|{p['point']['backend']}": p for p in points}}


def fake_quality() -> dict:
    def point(budget, loss):
        return {"status": "ok", "steps": int(100 * budget), "wall_s": budget, "val_loss_f64": loss,
                "train_loss_f64": loss - 0.01, "data": "names.txt",
                "point": {"backend": "fused", "n_embd": 32, "budget_s": budget, "threads": 1}}
    return {"meta": {"cpu": "fake cpu"}, "settings": {"scenario": "names", "n_layer": 2, "n_head": 4,
                                                      "batch_size": 32, "dtype": "float32"},
            "points": {f"fused/C32/{b}s/t1": point(b, loss) for b, loss in [(1, 2.3), (10, 2.1)]}}


def test_report_from_fixed_inputs(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    never_probe(monkeypatch)
    sweep, kernels, losses = fake_inputs(tmp_path)
    reports = tmp_path / "reports"
    asv = tmp_path / "asv" / "machine"
    asv.mkdir(parents=True)
    (asv / "c0ffee00-env.json").write_text(json.dumps({
        "commit_hash": "c0ffee0011", "env_name": "existing-py", "date": 1, "result_columns": ["result", "params"],
        "results": {"training.TrainStep.time_chunk": [[2.5e-3, float("nan")],
                                                     [["'numpy'", "'python'"], ["'float64'"], ["'names'"]]]}}))
    scaling, quality = tmp_path / "scale.json", tmp_path / "pareto.json"
    scaling.write_text(json.dumps(fake_scaling()))
    quality.write_text(json.dumps(fake_quality()))
    code = report.main(["--sweep", str(sweep), "--kernels", str(kernels), "--losses", str(losses),
                        "--asv", str(asv.parent), "--scaling", str(scaling), "--quality", str(quality),
                        "--reports", str(reports), "--latest"])
    assert code == 0
    out = reports / "2030-01-02-abcdef12"
    text = (out / "report.md").read_text()
    for png in report.PLOTS.values():
        assert 1000 < (out / png).stat().st_size < 200_000, png
        assert f"]({png})" in text
    assert (reports / "latest" / "report.md").read_text() == text
    assert "| centre | 16/4/1/16 b4 | float32 | 1 | fused | 90,000 | torch | 4.50x |" in text
    assert "| fused | 2.3000 | 2.1000 |" in text and "Data: names.txt" in text
    # headline: numpy float64 is 6,600 steps/s with 1 thread, 7,200 with blas 2 / numba 2, whose quartiles
    # (+-1 %) lie wholly below the 1-thread run's: a real thread effect. vs python: python's median 9.2 -> 783x
    cells = headline_cells(text, "| `numpy` float64")
    assert cells[1:5] == ["6,600", "±1 %", "7,200", "blas 2 / numba 2"]
    assert cells[8] == "783x"
    assert cells[7] == f"{100 * 7200 * 1.6e-4 / 20.0:.2f} %"  # MFU against the sweep's all-core float64 peak
    assert cells[9] == "0.50 s (cache load)"
    assert "| names | `numpy` float64 | 21.5 s |" in text  # the cold compile, measured apart
    assert "`python` float32: no float32" in text
    assert "2 GFLOP/s" in text or "| 2 |" in text  # matmul: 2e6 FLOPs in 1 ms
    assert "5.00e-02 over 3 steps" in text  # loss curve difference to python
    assert (out / "data" / "sweep.json").exists()
    assert json.loads((out / "data" / "peaks.json").read_text())["peaks_gflops"] == PEAKS
    # a chunk of 10 steps in 2.5 ms: 250 µs a step, as the sweep's steps/s counts a step
    assert "commit c0ffee00" in text and "| numpy float64 names | 250.0 µs |" in text
    assert "time per step (chunks of 10)" in text
    assert "python float64 names" not in text  # asv's NaN: skipped in setup
    # the committed copies keep the summaries, not every sample
    copied = json.loads((out / "data" / "kernels.json").read_text())
    assert copied["benchmarks"][0]["stats"] == {"median": 1e-3, "iqr": 1e-5, "rounds": 9}


def test_the_report_says_what_each_figure_is(tmp_path, monkeypatch):
    never_probe(monkeypatch)
    sweep, _, _ = fake_inputs(tmp_path)
    assert report.main(["--sweep", str(sweep), "--asv", "/nonexistent", "--reports", str(tmp_path / "r")]) == 0
    text = next((tmp_path / "r").glob("*/report.md")).read_text()
    assert "Every figure is a median" not in text
    assert "tokens/s and model GFLOP/s = the timed steps' positions and FLOPs over their total time" in text
    assert "`microgpt.perf.flops_for_docs`" in text and "flops_per_token" not in text


def _best(single, other):
    runs = [sweep_run("numpy", "float64", 1, 1, single), sweep_run("numpy", "float64", 2, 2, other)]
    rows = report.sweep_rows([{"runs": runs}])
    return report.best_run(rows)


def test_best_is_a_thread_setting_only_beyond_the_spread():
    run, real = _best(fake_result(1000, spread=0.01), fake_result(1100, spread=0.01))
    assert real and run["numba"] == 2  # quartiles 0.891-0.918 ms against 0.99-1.01 ms: apart
    run, real = _best(fake_result(1000, spread=0.10), fake_result(1100, spread=0.10))
    assert not real and run["numba"] == 1  # 10 % faster inside a +-10 % spread: noise, the 1-thread run is shown
    run, real = _best(fake_result(1100, spread=0.01), fake_result(1000, spread=0.01))
    assert not real and run["numba"] == 1  # the 1-thread run is the fastest
    no_spread = {k: v for k, v in fake_result(2000).items() if k not in ("p25_step_s", "p75_step_s")}
    assert _best(fake_result(1000), no_spread) == (_best(fake_result(1000), no_spread)[0], False)


def test_the_load_sentence_says_competition_only_above_the_cores():
    def rows(*loads):
        return report.sweep_rows([{"runs": [sweep_run("numpy", "float64", 1, 1, fake_result(10, load=l))
                                            for l in loads]}])

    quiet = " ".join(report.load_sentence(rows((0.2, 1.5), (1.0, 1.9)), 2))
    assert "0.2 to 1.9 on 2 cores" in quiet and "competed" not in quiet
    busy = " ".join(report.load_sentence(rows((1.0, 1.5), (2.0, 3.4)), 2))
    assert "1.0 to 3.4 on 2 cores" in busy and "other processes competed" in busy
    assert report.load_sentence(rows((0.5, 0.5)), None)[0].endswith("on None cores.")


def test_without_the_sweeps_peak_mfu_is_na_and_nothing_is_probed(tmp_path, monkeypatch):
    never_probe(monkeypatch)
    runs = [sweep_run("numpy", "float64", 1, 1, fake_result(1000, compile_kind="compiled"))]
    sweep = write_sweep(tmp_path / "old.json", runs, peaks=None)
    assert report.main(["--sweep", str(sweep), "--asv", "/nonexistent", "--reports", str(tmp_path / "r")]) == 0
    text = next((tmp_path / "r").glob("*/report.md")).read_text()
    cells = headline_cells(text, "| `numpy` float64")
    assert cells[7] == "n/a" and cells[9] == "0.50 s (compiled)"
    assert "the sweep holds no `peaks_gflops`" in text
    assert "No cold compile was measured with this sweep" in text


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
