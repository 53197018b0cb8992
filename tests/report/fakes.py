"""Hand-made results of the tools the report reads: a thread sweep, kernels, loss curves, a scale and a pareto sweep."""

from __future__ import annotations

import argparse
import json

from microgpt import machine
from microgpt.report.results import ReportInputs, read_inputs


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


def fake_command_line(tmp_path) -> tuple[argparse.Namespace, dict]:
    """fake_inputs's sweep, kernels and losses as the command line hands them on: its flags, {path: its JSON}."""
    sweep, kernels, losses = fake_inputs(tmp_path)
    files = {str(p): json.loads(p.read_text()) for p in (sweep, kernels, losses)}
    args = argparse.Namespace(sweep=[str(sweep)], kernels=str(kernels), losses=str(losses), asv=None, peaks_json=None,
                              pyperf=[], scaling=None, quality=None, reproduce=["python -m microgpt.report --latest"])
    return args, files


def fake_report_inputs(tmp_path) -> ReportInputs:
    """fake_command_line's results read as the report reads them, for one section at a time."""
    args, files = fake_command_line(tmp_path)
    out = tmp_path / "report"
    out.mkdir()
    return read_inputs(args, str(out), files, META)


def empty_inputs(tmp_path, **given) -> ReportInputs:
    """No tool's results but `given`: what a section gets when its tool was not run."""
    nothing = dict(out_dir=str(tmp_path), sweeps=[], sweep_runs=[], peaks={}, source_meta=META, kernels=[], pyperf=[],
                   curves=None, asv_dir=None, asv_file=None, asv=[], scaling=None, quality=None, reproduce=[])
    return ReportInputs(**{**nothing, **given})


def never_probe(monkeypatch):
    def probe(*a, **k):
        raise AssertionError("the report probed the matmul peak itself")

    monkeypatch.setattr(machine, "probe_peaks", probe)


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
