"""microgpt/report/scaling.py on a hand-made sweep: who wins where, the peers' ratios, MFU and intensity."""

import pytest

from microgpt.report import scaling


def result(label, backend, tokens_per_s, dtype="float32", threads=1, n_embd=16):
    return {"status": "ok", "tokens_per_s": tokens_per_s, "us_per_token": 1e6 / tokens_per_s,
            "flops_per_token": 1000.0 * n_embd, "model_gflops_per_s": tokens_per_s * 1000.0 * n_embd / 1e9,
            "window_s": 0.5, "steps_per_window": 10, "num_params": 5000,
            "point": {"label": label, "scenario": "names", "n_embd": n_embd, "n_head": 4, "n_layer": 1,
                      "block_size": 16, "batch_size": 4, "backend": backend, "dtype": dtype, "threads": threads}}


@pytest.fixture
def doc():
    points = [result("centre", "fused", 3000), result("centre", "numpy_batched", 1000),
              result("centre", "torch", 1500), result("n_embd=64", "fused", 1000, n_embd=64),
              result("n_embd=64", "numpy_batched", 1250, n_embd=64), result("n_embd=64", "torch", 2500, n_embd=64)]
    failed = {"status": "diverged", "point": dict(points[0]["point"], backend="numpy")}
    keyed = {f"{r['point']['label']}|{r['point']['backend']}": r for r in points}
    keyed["centre|numpy"] = failed
    return {"points": keyed, "grid": {"centre": {}}, "meta": {"cpu": "test cpu", "usable_cores": 2},
            "roofs": {"matmul_gflops": {"float32": {"1": 50.0, "all": 80.0}}, "triad_gbytes_per_s": {"1": 5.0}}}


def test_crossovers_name_the_fastest_and_its_margin(doc):
    by_label = {w.label: w for w in scaling.crossovers(doc)}
    assert by_label["centre"].fastest == "fused" and by_label["centre"].runner_up == "torch"
    assert by_label["centre"].margin == pytest.approx(2.0)
    assert by_label["n_embd=64"].fastest == "torch" and by_label["n_embd=64"].margin == pytest.approx(2.0)


def test_peers_compare_our_fastest_with_torch(doc):
    rows = {r["label"]: r for r in scaling.peers(doc)}
    assert rows["centre"]["ours"] == "fused" and rows["centre"]["over_torch"] == pytest.approx(2.0)
    assert rows["n_embd=64"]["ours"] == "numpy_batched" and rows["n_embd=64"]["over_torch"] == pytest.approx(0.5)
    assert rows["centre"]["over_torch_compile"] is None  # not measured: no ratio invented


def test_mfu_uses_the_sweeps_own_peak_for_the_thread_count(doc):
    r = doc["points"]["centre|fused"]
    assert scaling.mfu(doc, r) == pytest.approx(3000 * 16000 / 1e9 / 50.0)
    r2 = result("centre", "fused", 3000, threads=2)
    assert scaling.mfu(doc, r2) == pytest.approx(3000 * 16000 / 1e9 / 80.0)
    assert scaling.mfu(doc, result("centre", "fused", 3000, dtype="float64")) is None


def test_intensity_is_step_flops_over_ten_touches_of_each_parameter():
    r = result("centre", "fused", 2000)
    tokens_per_step = 2000 * 0.5 / 10
    assert scaling.intensity(r) == pytest.approx(16000 * tokens_per_step / (10 * 5000 * 4))


def test_section_lists_every_point_and_the_ones_that_failed(doc, tmp_path):
    text = scaling.section(doc, {"cost": "cost.png", "mfu": None})
    assert text.startswith("## Scaling") and "![µs per token against FLOPs per token](cost.png)" in text
    assert "MFU against width" not in text  # a plot that was not drawn is not linked
    assert "| centre | 16/4/1/16 b4 | float32 | 1 | fused | 3,000 | torch | 2.00x |" in text
    assert "centre numpy float32 t1: diverged" in text
    assert "6 points finished of 7 run" in text


def test_plots_are_drawn(doc, tmp_path):
    pytest.importorskip("matplotlib")
    for plot in (scaling.plot_cost, scaling.plot_mfu, scaling.plot_roofline):
        path = tmp_path / f"{plot.__name__}.png"
        assert plot(doc, str(path)) and path.stat().st_size > 1000
    assert not scaling.plot_cost(doc, str(tmp_path / "x.png"), dtype="float64")  # nothing to draw: no file
    assert not (tmp_path / "x.png").exists()


def test_auto_regret_with_the_point_in_its_table_and_left_out(doc):
    rows = {r["label"]: r for r in scaling.auto_regrets(doc)}
    # with the sweep as its table auto picks what was fastest; the failed numpy point is no candidate
    assert rows["centre"]["auto"] == "fused" and rows["centre"]["regret"] == pytest.approx(1.0)
    assert rows["n_embd=64"]["auto"] == "torch" and rows["n_embd=64"]["regret"] == pytest.approx(1.0)
    # each left out, auto goes by the other point's winner and pays for it
    assert rows["n_embd=64"]["auto_left_out"] == "fused" and rows["n_embd=64"]["regret_left_out"] == pytest.approx(2.5)
    assert rows["centre"]["auto_left_out"] == "torch" and rows["centre"]["regret_left_out"] == pytest.approx(2.0)
    text = scaling.section(doc, {})
    assert "Worst: 1.00x with the table (2/2 points within 1.10x), 2.50x left out (n_embd=64 float32 t1)" in text


def test_startup_counts_a_warm_start_only_where_compile_was_a_cache_load(doc):
    doc["cold_compile_s"] = {"fused|float32": 31.5}
    doc["points"]["centre|fused"].update(compile_s=12.0, warm_start_s=12.7, peak_rss_bytes=300 * 2**20)
    doc["points"]["n_embd=64|fused"].update(compile_s=0.05, warm_start_s=0.7, peak_rss_bytes=200 * 2**20)
    fused = next(s for s in scaling.startups(doc) if s.backend == "fused")
    assert fused.cold_compile_s == 31.5 and fused.warm_start_s == [0.7] and fused.point_compile_s == [0.05, 12.0]
    assert fused.peak_rss_bytes == 300 * 2**20 and fused.peak_rss_label == "centre t1"
    assert "| fused | float32 | 31.5 s | 6.03 s (0.05-12.00) | 0.70 s (0.70-0.70) | 300 MiB (centre t1) |" in \
        scaling.section(doc, {})
