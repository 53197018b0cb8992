"""microgpt/report/sweep.py: a thread setting is "best" only beyond the spread; the load sentence."""

from __future__ import annotations

from fakes import fake_result, sweep_run
from microgpt.report.results import sweep_rows
from microgpt.report.sweep import best_run, load_sentence


def _best(single, other):
    runs = [sweep_run("numpy", "float64", 1, 1, single), sweep_run("numpy", "float64", 2, 2, other)]
    rows = sweep_rows([{"runs": runs}])
    return best_run(rows)


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
        return sweep_rows([{"runs": [sweep_run("numpy", "float64", 1, 1, fake_result(10, load=l))
                                            for l in loads]}])

    quiet = " ".join(load_sentence(rows((0.2, 1.5), (1.0, 1.9)), 2))
    assert "0.2 to 1.9 on 2 cores" in quiet and "competed" not in quiet
    busy = " ".join(load_sentence(rows((1.0, 1.5), (2.0, 3.4)), 2))
    assert "1.0 to 3.4 on 2 cores" in busy and "other processes competed" in busy
    assert load_sentence(rows((0.5, 0.5)), None)[0].endswith("on None cores.")
