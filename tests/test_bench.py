"""microgpt.bench: the experiment every benchmark trains (real data or the synthetic corpus), and its statistics."""

from __future__ import annotations

from microgpt import bench, synthetic_data


def test_synthetic_data_stands_in_when_no_file_is_found(monkeypatch, tmp_path):
    # nowhere to find a data file: no $MICROGPT_DATA_DIR, no data/ here, no folders beside the checkout
    monkeypatch.delenv("MICROGPT_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "checkout_data_dirs", lambda cfg: [])
    for scenario in ("names", "alice"):
        exp = bench.bench_experiment(scenario)
        assert exp.dataset.source == synthetic_data.SYNTHETIC_SOURCE
        assert len(exp.train_tokens) > 1000
        # the same documents as the file tools get from write_synthetic_data
        path = synthetic_data.write_synthetic_data(exp.cfg, str(tmp_path / "files"))
        assert bench.bench_experiment(scenario, extra_dirs=[str(tmp_path / "files")]).docs == exp.docs
        assert path.endswith(exp.cfg.data.file)
    lengths = [len(d) for d in bench.bench_experiment("alice").docs]
    assert max(lengths) == 128  # chunks of the alice shape


def test_bench_experiment_overrides_and_step_positions():
    exp = bench.bench_experiment("names", "float32", batch_size=2, num_steps=7)
    assert exp.cfg.training.dtype == "float32" and exp.cfg.training.num_steps == 7
    positions = bench.step_positions(exp, 0, 3)
    T = exp.cfg.model.block_size
    assert positions == [min(T, len(exp.train_tokens[i]) - 1) for i in range(6)]


def test_percentile_interpolates():
    assert bench.percentile([3.0, 1.0, 2.0], 0.5) == 2.0 and bench.percentile([1.0, 2.0], 0.25) == 1.25
    assert bench.percentile([7.0], 0.9) == 7.0
