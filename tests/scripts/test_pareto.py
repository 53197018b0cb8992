"""scripts/pareto.py: one tiny point end to end, its losses recomputed, a second run resumes."""

import json
import os

from conftest import ROOT, run_cli, shared_file

SCRIPT = os.path.join(ROOT, "scripts", "pareto.py")
TINY = ["--backends", "python", "--widths", "8", "--budgets", "1.5", "--threads", "1", "--n-head", "2",
        "--n-layer", "1", "--batch-size", "1", "--dtype", "float64"]


def test_a_point_runs_is_recomputed_and_is_not_run_twice(tmp_path):
    shared_file("names.txt")
    out = tmp_path / "pareto.json"
    first = run_cli([SCRIPT, *TINY, "--out", str(out), "--plot", str(tmp_path / "p.png")])
    assert first.returncode == 0, first.stderr
    doc = json.loads(out.read_text())
    (key, r), = doc["points"].items()
    assert key == "python/C8/1.5s/t1" and r["status"] == "ok", r
    assert r["steps"] >= 1 and r["wall_s"] > 0
    # the loss train printed (python backend) and the float64 recomputation from model.json agree
    assert abs(r["val_loss"] - r["val_loss_f64"]) < 1e-4, r
    assert 0 < r["train_loss_f64"] < 10 and (tmp_path / "p.png").stat().st_size > 0
    assert doc["meta"] and doc["settings"]["batch_size"] == 1

    again = run_cli([SCRIPT, *TINY, "--out", str(out)])
    assert again.returncode == 0, again.stderr
    assert "1 points, 1 already in" in again.stdout and "[1/1]" not in again.stdout


def test_bad_grids_are_one_line(tmp_path):
    for args, fragment in [(["--widths", "30"], "--widths: 30 is not divisible by --n-head 4"),
                           (["--budgets", "0"], "--budgets: expected one or more positive numbers"),
                           (["--budgets", "x"], "--budgets: expected a comma-separated list"),
                           (["--backends", "nope"], "unknown backend 'nope'")]:
        r = run_cli([SCRIPT, *args, "--out", str(tmp_path / "p.json")])
        assert r.returncode == 1 and r.stderr.startswith("error: ") and fragment in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.json").exists()
