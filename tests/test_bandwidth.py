"""microgpt/bandwidth.py: the triad computes what it times, at 1 and 2 threads."""

import pytest

pytest.importorskip("numba")

from microgpt.bandwidth import TRIAD_BYTES_PER_ELEMENT, triad_gbytes_per_s  # noqa: E402


@pytest.mark.parametrize("threads", [1, 2])
def test_triad_reports_a_finite_bandwidth(threads):
    gbs = triad_gbytes_per_s(threads, n=1 << 16, repeats=2)
    assert 0 < gbs < 1e4  # bytes moved over seconds: not a speed assertion, a units one
    assert TRIAD_BYTES_PER_ELEMENT == 24
