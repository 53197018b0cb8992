"""microgpt/report/gflops.py: the GFLOP/s and MFU section, the best training runs against the sweep's matmul peaks."""

from __future__ import annotations

import dataclasses
import os

import pytest

from fakes import empty_inputs, fake_report_inputs
from microgpt.report.gflops import gflops_section
from microgpt.report.plots import PLOTS


def test_the_best_run_of_each_backend_is_divided_by_the_all_core_and_the_one_thread_peak(tmp_path):
    """numpy float64's best run (blas 2 / numba 2) makes 7,200 steps/s x 1.6e-4 = 1.15 GFLOP/s: 5.76 % of the
    20 GFLOP/s all-core float64 peak, 11.52 % of the 10 GFLOP/s one-thread peak."""
    pytest.importorskip("matplotlib")
    inputs = fake_report_inputs(tmp_path)
    text = gflops_section(inputs)
    assert text[0] == "## GFLOP/s and MFU"
    assert "| names | numpy float64 | blas 2 / numba 2 | 1.15 | 5.76 % | 11.52 % |" in text
    assert "| names | numpy float32 | blas 2 / numba 2 | 1.34 | 3.36 % | 6.72 % |" in text  # the float32 peaks
    assert os.path.getsize(os.path.join(inputs.out_dir, PLOTS["gflops"])) > 1000


def test_without_peaks_mfu_is_na(tmp_path):
    """A sweep without its peaks: the GFLOP/s are still shown, the MFU columns say n/a rather than guess."""
    pytest.importorskip("matplotlib")
    inputs = dataclasses.replace(fake_report_inputs(tmp_path), peaks={})
    assert "| names | numpy float64 | blas 2 / numba 2 | 1.15 | n/a | n/a |" in gflops_section(inputs)


def test_without_kernels_or_a_sweep_there_is_no_section(tmp_path):
    assert gflops_section(empty_inputs(tmp_path)) == []
