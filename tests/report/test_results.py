"""microgpt/report/results.py: which asv result file is read, and its rows."""

from __future__ import annotations

import json

from microgpt.report.results import asv_rows


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
    path, rows = asv_rows(str(tmp_path))
    assert path.endswith("new-run.json") and rows[0]["value"] == 2.0


def test_asv_results_are_read(tmp_path):
    machine = tmp_path / "vm"
    machine.mkdir()
    (machine / "machine.json").write_text("{}")
    (machine / "abc-env.json").write_text(json.dumps({
        "date": 5, "result_columns": ["result", "params", "version"],
        "results": {"training.TrainStep.time_step": [[1e-3, None], [["'numpy'", "'python'"], ["'names'"]], "v"],
                    "kernels.Matmul.time_forward": [[1.0], [["'a'"]], "v"]}}))
    path, rows = asv_rows(str(tmp_path))
    assert path.endswith("abc-env.json")
    assert rows == [{"name": "training.TrainStep.time_step", "params": ["numpy", "names"], "value": 1e-3},
                    {"name": "training.TrainStep.time_step", "params": ["python", "names"], "value": None}]
