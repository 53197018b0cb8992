"""microgpt/scale_points.py: only finished points are grouped, by point, and a step's tokens come from its window."""

import pytest

from microgpt.scale_points import groups, ok_points, tokens_per_step


def point(label, backend, status="ok", threads=1):
    return {"status": status, "tokens_per_s": 2000.0, "window_s": 0.5, "steps_per_window": 10,
            "point": {"label": label, "backend": backend, "dtype": "float32", "threads": threads}}


def test_only_finished_points_are_read_and_grouped_by_label_dtype_and_threads():
    doc = {"points": {"a": point("centre", "fused"), "b": point("centre", "torch"),
                      "c": point("centre", "numpy", status="timed out"), "d": point("centre", "fused", threads=2)}}
    assert len(ok_points(doc)) == 3 and ok_points({}) == []
    by_point = groups(doc)
    assert set(by_point) == {("centre", "float32", 1), ("centre", "float32", 2)}
    assert set(by_point["centre", "float32", 1]) == {"fused", "torch"}


def test_a_steps_tokens_are_the_windows_tokens_over_its_steps():
    assert tokens_per_step(point("centre", "fused")) == pytest.approx(2000.0 * 0.5 / 10)
