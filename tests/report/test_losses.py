"""microgpt/report/losses.py: the Loss curves section, every backend's curve and its distance to python's."""

from __future__ import annotations

import os

import pytest

from fakes import empty_inputs, fake_report_inputs
from microgpt.report.losses import losses_section, moving_average, reference_curve
from microgpt.report.plots import PLOTS


def test_moving_average_is_over_the_values_so_far_until_the_window_is_full():
    """The first k-1 values average what there is; from then on, exactly the last k."""
    assert moving_average([4.0, 2.0, 6.0, 0.0], 2) == [4.0, 3.0, 4.0, 3.0]
    assert moving_average([1.0, 2.0, 3.0], 5) == [1.0, 1.5, 2.0]
    assert moving_average([], 3) == []


def test_the_reference_is_the_python_curve():
    """Differences are taken to python's curve, whatever its dtype; none without one."""
    assert reference_curve({"numpy float64": [], "python float64": []}) == "python float64"
    assert reference_curve({"numpy float64": []}) is None


def test_the_section_gives_each_curve_its_last_mean_and_its_largest_difference_to_python(tmp_path):
    """fake curves: numpy's [3.0, 2.9, 2.75] against python's [3.0, 2.9, 2.8]: mean 2.8833, at most 5.00e-02."""
    pytest.importorskip("matplotlib")
    inputs = fake_report_inputs(tmp_path)
    text = losses_section(inputs)
    assert text[:3] == ["## Loss curves", "", f"![loss curves]({PLOTS['losses']})"] and "test curves" in text
    assert "| python float64 | 3 | 2.9000 |  |" in text
    assert "| numpy float64 | 3 | 2.8833 | 5.00e-02 over 3 steps |" in text
    assert os.path.getsize(os.path.join(inputs.out_dir, PLOTS["losses"])) > 1000


def test_without_curves_there_is_no_section(tmp_path):
    assert losses_section(empty_inputs(tmp_path)) == []
