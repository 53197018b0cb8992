"""The machine's memory roof: a STREAM-style triad, a[i] = b[i] + s * c[i], timed with Numba.

STREAM counts 3 arrays of traffic per element (read b, read c, write a), 24 bytes in float64,
and reports the fastest of several passes: what the memory system demonstrably delivered. The
arrays are much larger than any cache (64 MiB each by default), so the roof is DRAM's. The
kernel is compiled at the first call, never at import.
"""

from __future__ import annotations

import math
import time

from .threads import numba_threads

TRIAD_BYTES_PER_ELEMENT = 3 * 8  # float64: read b, read c, write a (write-allocate traffic is not counted)


def _triad_kernels():
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def triad_parallel(a, b, c, s):
        for i in prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    @njit(cache=False)
    def triad_serial(a, b, c, s):
        for i in range(a.shape[0]):
            a[i] = b[i] + s * c[i]

    return triad_serial, triad_parallel


def triad_gbytes_per_s(threads: int = 1, n: int = 1 << 23, repeats: int = 7) -> float:
    """GB/s (1e9 bytes) of the triad over n float64 elements with `threads` Numba threads; best of `repeats`."""
    import numba
    import numpy as np

    serial, parallel = _triad_kernels()
    kernel = serial if threads == 1 else parallel
    if threads > 1:
        numba.set_num_threads(min(threads, numba_threads()))
    a = np.zeros(n)
    b = np.full(n, 1.0)
    c = np.full(n, 2.0)
    kernel(a, b, c, 3.0)  # compile, and page the arrays in
    best = math.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        kernel(a, b, c, 3.0)
        best = min(best, time.perf_counter() - t0)
    if a[n // 2] != 7.0:  # 1 + 3 * 2: a wrong kernel must not report a speed
        raise RuntimeError(f"triad computed {a[n // 2]}, not 7.0")
    return TRIAD_BYTES_PER_ELEMENT * n / best / 1e9
