"""python -m microgpt.report from fixed inputs: every section and plot, what each figure is, no peak probed."""

from __future__ import annotations

import json

import pytest

from fakes import (PEAKS, fake_inputs, fake_quality, fake_result, fake_scaling, headline_cells, never_probe, sweep_run,
                   write_sweep)
from microgpt.report import command_line as report
from microgpt.report.plots import PLOTS


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
    for png in PLOTS.values():
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
    assert "`microgpt.flops.flops_for_docs`" in text and "flops_per_token" not in text


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
