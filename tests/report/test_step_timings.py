"""microgpt/report/step_timings.py: the pyperf and asv sections, one training step as those tools timed it."""

from __future__ import annotations

import json

from fakes import empty_inputs
from microgpt.bench import STEP_CHUNK
from microgpt.report.step_timings import asv_section, asv_table, pyperf_section


def test_asv_rows_become_one_line_per_combination_and_a_column_per_benchmark():
    """A chunk's time is divided by STEP_CHUNK (a step, as the sweep counts one); a skipped value stays out."""
    rows = [{"name": "training.TrainStep.time_chunk", "params": ["numpy", "float64", "names"],
             "value": 2.5e-4 * STEP_CHUNK},
            {"name": "training.Throughput.track_mfu", "params": ["numpy", "float64", "names"], "value": 1.234},
            {"name": "training.TrainStep.time_chunk", "params": ["python", "float64", "names"], "value": None},
            {"name": "kernels.Matmul.time_forward", "params": ["names"], "value": 1.0}]
    assert asv_table(rows) == [f"| backend dtype scenario | time per step (chunks of {STEP_CHUNK}) | MFU |",
                               "| --- | ---: | ---: |", "| numpy float64 names | 250.0 µs | 1.23 % |"]


def test_the_asv_section_names_the_file_and_its_commit(tmp_path):
    """The file the rows come from, its commit's first 8 digits and its environment, then the table."""
    path = tmp_path / "machine" / "c0ffee00-env.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"commit_hash": "c0ffee0011", "env_name": "py3.12"}))
    rows = [{"name": "training.TrainStep.time_step", "params": ["numpy", "float64", "names"], "value": 2e-3}]
    text = asv_section(empty_inputs(tmp_path, asv_dir=str(tmp_path), asv_file=str(path), asv=rows))
    assert text[0] == "## asv"
    assert "From `c0ffee00-env.json`" in text[2] and "commit c0ffee00, environment py3.12" in text[2]
    assert "| numpy float64 names | 2.00 ms |" in text


def test_the_pyperf_section_is_a_row_per_benchmark_mean_and_std():
    rows = [{"file": "train.json", "name": "names numpy", "mean_s": 2e-3, "std_s": 1e-4, "values": 60}]
    text = pyperf_section(empty_inputs("/nonexistent", pyperf=rows))
    assert text[0] == "## pyperf" and "| train.json | names numpy | 2.00 ms | 100.0 µs | 60 |" in text


def test_without_results_neither_section_is_written(tmp_path):
    assert pyperf_section(empty_inputs(tmp_path)) == [] and asv_section(empty_inputs(tmp_path)) == []
