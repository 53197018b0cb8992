"""scripts/scale_sweep.py: grid validation in one line, and a one-point sweep that resumes."""

import json
import os

import pytest

from conftest import ROOT, run_cli

SCRIPT = os.path.join(ROOT, "scripts", "scale_sweep.py")


def tiny_grid(**changes):
    grid = {"centre": {"scenario": "names", "n_embd": 8, "n_head": 2, "n_layer": 1, "block_size": 8,
                       "batch_size": 1},
            "axes": {}, "extra": [], "backends": ["python"], "optional_backends": [], "python_max_params": 10**6,
            "dtypes": ["float64"], "threads": [1], "window_s": 0.05, "windows": 3, "point_cap_s": 60}
    grid.update(changes)
    return grid


@pytest.mark.parametrize("changes, fragment", [
    ({"colour": "red"}, "colour: unknown key"),
    ({"axes": {"n_embd": []}}, "axes.n_embd: an axis needs one or more values"),
    ({"axes": {"width": [8]}}, "axes.width: unknown axis"),
    ({"centre": {"scenario": "names", "n_embd": 30, "n_head": 4}}, "n_embd (30) is not divisible by n_head (4)"),
    ({"backends": ["nope"]}, "unknown backend 'nope'"),
    ({"dtypes": ["float16"]}, "'float16' is not one of"),
    ({"threads": [0]}, "threads: 0 is not a thread count"),
])
def test_bad_grids_are_one_line(tmp_path, changes, fragment):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(tiny_grid(**changes)))
    r = run_cli([SCRIPT, "--grid", str(grid), "--out", str(tmp_path / "out.json")])
    assert r.returncode == 1 and r.stderr.startswith("error: ") and fragment in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out.json").exists()


def test_an_uninstalled_backend_is_named(tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(tiny_grid(backends=["python", "fused"])))
    argv = [SCRIPT, "--grid", str(grid), "--out", str(tmp_path / "out.json")]
    code = f"import sys, runpy; sys.modules['numba'] = None; sys.argv = {argv!r}; runpy.run_path({SCRIPT!r}, run_name='__main__')"
    r = run_cli(["-c", code])
    assert r.returncode == 1 and "backends: 'fused' is not installed here" in r.stderr, r.stderr


def test_a_one_point_sweep_records_its_figures_and_resumes(tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(tiny_grid()))
    out = tmp_path / "out.json"
    r = run_cli([SCRIPT, "--grid", str(grid), "--out", str(out), "--no-cold", "--no-roofs"])
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    (key, p), = doc["points"].items()
    assert key == "centre|python|float64|t1" and p["status"] == "ok", p
    assert p["tokens_per_s_p10"] <= p["tokens_per_s"] <= p["tokens_per_s_p90"]
    assert p["windows"] == 3 and p["peak_rss_bytes"] > 0 and p["warm_start_s"] > 0
    assert p["us_per_token"] == pytest.approx(1e6 / p["tokens_per_s"])
    assert doc["meta"]["cpu"] and p["threads"]["env"]["NUMBA_NUM_THREADS"] == "1"
    again = run_cli([SCRIPT, "--grid", str(grid), "--out", str(out), "--no-cold", "--no-roofs"])
    assert again.returncode == 0 and "(1 already in" in again.stdout and "[1/" not in again.stdout
