"""microgpt/report/kernels.py: the Kernels section, a table row and a panel per pytest-benchmark result."""

from __future__ import annotations

import os

import pytest

from fakes import empty_inputs, fake_report_inputs
from microgpt.report.kernels import kernels_section
from microgpt.report.plots import PLOTS


def test_each_kernel_is_a_row_with_its_median_and_gflops_where_it_has_a_flop_count(tmp_path):
    """matmul: 2e6 FLOPs in a 1 ms median is 2 GFLOP/s; xent has no FLOP count, so its cell stays empty."""
    pytest.importorskip("matplotlib")
    inputs = fake_report_inputs(tmp_path)
    text = kernels_section(inputs)
    assert text[0] == "## Kernels" and f"![kernel timings]({PLOTS['kernels']})" in text
    assert "| matmul | forward names float64 | 1.00 ms | 9 | 2 |" in text
    assert "| xent | forward_and_backward names float32 | 20.0 µs | 9 |  |" in text
    assert os.path.getsize(os.path.join(inputs.out_dir, PLOTS["kernels"])) > 1000


def test_without_kernel_results_there_is_no_section(tmp_path):
    """No --kernels: no lines and no plot."""
    assert kernels_section(empty_inputs(tmp_path)) == []
    assert not os.path.exists(tmp_path / PLOTS["kernels"])
