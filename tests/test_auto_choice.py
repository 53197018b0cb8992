"""microgpt/auto_choice.py: auto picks the backend measured fastest nearby, and says why."""

import json

import pytest

from microgpt.auto_choice import Row, Table, choose, load_table, regrets, table_from_sweep
from microgpt.errors import MicrogptError

# small models: fused wins; big ones: numpy_batched wins (the shape issue 14 measured)
TABLE = [Row("fused", "float32", 1, 2e4, 100, 50_000), Row("numpy_batched", "float32", 1, 2e4, 100, 10_000),
         Row("fused", "float32", 1, 5e6, 2000, 1_000), Row("numpy_batched", "float32", 1, 5e6, 2000, 2_500),
         Row("fused", "float32", 2, 5e6, 2000, 1_500), Row("numpy_batched", "float32", 2, 5e6, 2000, 1_200)]
BOTH = ["python", "numpy_batched", "fused"]


def test_the_nearest_points_winner_is_chosen():
    assert choose(3e4, 120, "float32", 1, BOTH, TABLE).backend == "fused"
    big = choose(4e6, 1800, "float32", 1, BOTH, TABLE)
    assert big.backend == "numpy_batched" and "2.50x fused" in big.reason and "tokens/s" in big.reason
    assert choose(4e6, 1800, "float32", 2, BOTH, TABLE).backend == "fused"  # the 2-thread rows say otherwise
    assert choose(4e6, 1800, "float32", 8, BOTH, TABLE).backend == "fused"  # nearest thread count: 2


def test_only_installed_backends_and_the_old_rule_without_a_table():
    assert choose(4e6, 1800, "float32", 1, ["python", "fused"], TABLE).backend == "fused"
    fallback = choose(4e6, 1800, "float64", 1, BOTH, TABLE)
    assert fallback.backend == "fused" and "no measured table for this dtype" in fallback.reason
    assert choose(1e4, 10, "float64", 1, ["python"], []).backend == "python"


def test_a_short_run_takes_a_backend_that_need_not_compile_first():
    # fused 5x numpy_batched at this size, but 45 s to compile: 1000 steps of 120 tokens take 2.4 s vs 12 s
    short = choose(3e4, 120, "float32", 1, BOTH, TABLE, steps=1000, compile_s={"fused": 45.0})
    assert short.backend == "numpy_batched"
    assert "~12 s (training 12), where fused, the fastest a step, would take ~47 s (compiling 45 + training 2.4)" \
        in short.reason
    assert "its Numba cache is empty: one run with --backend fused fills it" in short.reason
    # a long run pays the compile back; a warm cache (nothing to compile) or an unknown length: the fastest
    assert choose(3e4, 120, "float32", 1, BOTH, TABLE, steps=100_000, compile_s={"fused": 45.0}).backend == "fused"
    assert choose(3e4, 120, "float32", 1, BOTH, TABLE, steps=1000, compile_s={}).backend == "fused"
    assert choose(3e4, 120, "float32", 1, BOTH, TABLE, compile_s={"fused": 45.0}).backend == "fused"


def test_a_slow_start_counts_against_a_backend_on_a_short_run():
    # fused 5x faster a step, but (say) 20 s to start: 100 steps of 120 tokens are 1.2 s on numpy_batched
    starts = {"fused": 20.0, "numpy_batched": 0.5}
    short = choose(3e4, 120, "float32", 1, BOTH, TABLE, steps=100, start_s=starts)
    assert short.backend == "numpy_batched" and "(start 0.5 + training 1.2)" in short.reason
    assert "Numba cache" not in short.reason  # nothing to compile: no advice about the cache
    assert choose(3e4, 120, "float32", 1, BOTH, TABLE, steps=100_000, start_s=starts).backend == "fused"


def test_the_experiment_charges_the_compile_only_where_the_cache_is_cold(monkeypatch):
    pytest.importorskip("numba")
    from microgpt import compile_cache
    from microgpt.config import load_scenario
    from microgpt.experiment import prepare
    from microgpt.synthetic_data import synthetic_dataset

    cfg = load_scenario("names").replace("training", dtype="float32")
    exp = prepare(cfg, dataset=synthetic_dataset(cfg), quiet=True)
    table = Table([], {"fused|float32": 45.0, "fused|float64": 50.0, "numpy_batched|float32": 3.0,
                       "torch_compile|float32": 30.0})
    warm = {"numpy_batched-float32"}
    monkeypatch.setattr(compile_cache, "is_warm", lambda variant: variant in warm)
    assert exp.compile_first(table, ["fused", "numpy_batched"]) == {"fused": 45.0}
    table.cold_compile_s["torch|float32"] = 0.0  # nothing to compile: never imported to ask
    assert exp.compile_first(table, ["fused", "numpy_batched", "torch"]) == {"fused": 45.0}
    warm.add("fused-float32-doc")  # names trains one document a step: the per-document loop
    assert exp.compile_first(table, ["fused", "numpy_batched"]) == {}
    monkeypatch.setattr(compile_cache, "is_warm", lambda variant: None)  # a cache it cannot see: no charge
    assert exp.compile_first(table, ["fused", "numpy_batched"]) == {}


def test_the_shipped_table_is_a_table_from_a_sweep():
    shipped = load_table()  # microgpt/auto_table.json
    assert shipped.rows, "microgpt/auto_table.json has no rows: rebuild it with scale_sweep.py --write-auto-table"
    assert {r.backend for r in shipped.rows} >= {"fused", "numpy_batched"}
    assert {r.dtype for r in shipped.rows} == {"float32", "float64"} and {r.threads for r in shipped.rows} == {1, 2}
    assert all(r.tokens_per_s > 0 and r.flops_per_token > 0 for r in shipped.rows)
    assert shipped.cold_compile_s.get("fused|float32", 0) > 0
    assert 0 < shipped.start_s["numpy_batched|float64"] < shipped.start_s["torch|float64"]  # torch imports slowly


def sweep_point(label, backend, tokens_per_s, fpt):
    return {"status": "ok", "tokens_per_s": tokens_per_s, "window_s": 0.5, "steps_per_window": 5,
            "flops_per_token": fpt, "point": {"label": label, "backend": backend, "dtype": "float32",
                                               "threads": 1, "n_embd": 16, "n_head": 4, "n_layer": 1,
                                               "block_size": 16, "batch_size": 1}}


def test_regret_is_one_where_auto_is_right_and_above_where_it_is_not():
    doc = {"points": {"a|f": sweep_point("a", "fused", 1000, 2e4), "a|n": sweep_point("a", "numpy_batched", 500, 2e4),
                      "b|f": sweep_point("b", "fused", 100, 5e6), "b|n": sweep_point("b", "numpy_batched", 300, 5e6),
                      "b|c": sweep_point("b", "torch_compile", 900, 5e6)}}
    table = table_from_sweep(doc)
    assert {r.backend for r in table} == {"fused", "numpy_batched"}  # auto never compiles with torch
    by_label = {r["label"]: r for r in regrets(doc, table, BOTH)}
    assert by_label["a"]["regret"] == 1.0 and by_label["b"]["auto"] == "numpy_batched"
    # a table that only knows the small point picks fused at the big one, and pays 3x for it
    small_only = [r for r in table if r.flops_per_token == 2e4]
    assert {r["label"]: r["regret"] for r in regrets(doc, small_only, BOTH)}["b"] == pytest.approx(3.0)


def test_a_broken_table_is_one_line(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"rows": [{"backend": "fused"}]}))
    with pytest.raises(MicrogptError, match="not an auto-choice table"):
        load_table(str(bad))
    assert load_table(str(tmp_path / "missing.json")) == Table([], {})


def test_training_prints_what_auto_chose_and_why(tmp_path):
    pytest.importorskip("numba")
    from conftest import run_cli, shared_file

    shared_file("names.txt")
    table = tmp_path / "table.json"  # a made-up measurement in which numpy_batched wins at names' size
    rows = [Row("numpy_batched", "float64", t, 2.5e4, 8, 9e4).__dict__ for t in (1, 2)]
    rows += [Row("fused", "float64", t, 2.5e4, 8, 3e4).__dict__ for t in (1, 2)]
    table.write_text(json.dumps({"rows": rows}))
    r = run_cli(["-m", "microgpt.train", "--steps", "2", "--num-samples", "1", "-o", str(tmp_path / "m.json")],
                env={"MICROGPT_AUTO_TABLE": str(table)})
    assert r.returncode == 0, r.stderr
    assert "backend: numpy_batched (float64)" in r.stdout
    assert "auto chose numpy_batched: measured fastest at the nearest sweep point" in r.stdout
    assert "3.00x fused" in r.stdout
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["backend"] == "numpy_batched"


def test_a_first_short_run_with_an_empty_cache_trains_on_a_backend_that_is_ready(tmp_path):
    pytest.importorskip("numba")
    from conftest import run_cli, shared_file

    shared_file("names.txt")
    table = tmp_path / "table.json"  # fused 3x faster a step, but 45 s to compile with an empty cache
    rows = [Row("numpy_batched", "float64", t, 2.5e4, 8, 3e4).__dict__ for t in (1, 2)]
    rows += [Row("fused", "float64", t, 2.5e4, 8, 9e4).__dict__ for t in (1, 2)]
    table.write_text(json.dumps({"rows": rows, "cold_compile_s": {"fused|float64": 45.0,
                                                                  "numpy_batched|float64": 1.5}}))
    r = run_cli(["-m", "microgpt.train", "--steps", "2", "--num-samples", "1", "-o", str(tmp_path / "m.json")],
                env={"MICROGPT_AUTO_TABLE": str(table), "NUMBA_CACHE_DIR": str(tmp_path / "empty-cache")})
    assert r.returncode == 0, r.stderr
    assert "auto chose numpy_batched: done first in 2 steps" in r.stdout, r.stdout
    assert "its Numba cache is empty: one run with --backend fused fills it" in r.stdout
    assert "compiling numpy_batched-float64 with Numba: not in the cache yet (it took 1.5 s in the scale sweep" \
        in r.stdout
    assert (tmp_path / "empty-cache" / "compiled-numpy_batched-float64").exists()  # ready for the next run
    again = run_cli(["-m", "microgpt.train", "--steps", "2", "--num-samples", "1", "-o", str(tmp_path / "m.json")],
                    env={"MICROGPT_AUTO_TABLE": str(table), "NUMBA_CACHE_DIR": str(tmp_path / "empty-cache")})
    assert again.returncode == 0 and "auto chose numpy_batched" in again.stdout, again.stderr
    assert "compiling numpy_batched" not in again.stdout  # loaded from the cache: nothing to announce
