"""fused_simd.vexp: its accuracy over each dtype's whole finite range, and what it returns at the edges.

The contract tested here (and stated in vexp's docstring):

- where exp(x) is a normal number, vexp is within 2 units of the dtype's epsilon, relative;
- below ln(smallest normal) (the result would be denormal) it is exactly 0, as for -inf:
  denormals are slow, and the softmax weights that get there are negligible next to 1;
- where exp(x) exceeds the largest finite number it is inf, as for inf;
- NaN gives NaN.

The reference is numpy's exp in long double (80-bit on x86), far more precise than either dtype.
At the end: exp_shifted (vexp over a row of any length) and take_all (one index of every buffer).
"""

from collections import namedtuple

import numpy as np
import pytest
from numba import njit

from microgpt.kernels.fused_simd import EXP_LIMITS, exp_shifted, take_all, vwidth

DTYPES = [np.float64, np.float32]
MAX_REL_ERROR_EPS = 2.0  # measured: 1.78 eps in float64, 1.42 in float32 (test_accuracy_over_the_normal_range)


@njit(cache=True)
def vexp_array(x):
    """vexp of every element, by exp_shifted with no shift (x - 0 is x, for -0.0 and NaN too)."""
    out = x.copy()
    exp_shifted(out, x.dtype.type(0), np.empty(vwidth(x), x.dtype))
    return out


def limits(dtype):
    """(ln of the smallest normal, ln of the largest finite number), exact in long double."""
    fi = np.finfo(dtype)
    return np.log(np.longdouble(fi.tiny)), np.log(np.longdouble(fi.max))


def normal_range_inputs(dtype, n=1 << 20):
    """Inputs whose exp is a normal number: an even grid, random points, and |x| down to the smallest normal."""
    ln_tiny, ln_max = limits(dtype)
    lo = np.nextafter(dtype(ln_tiny), dtype(0))  # both ends inside, after rounding to the dtype
    hi = np.nextafter(dtype(ln_max), dtype(0))
    rng = np.random.default_rng(0)
    small = np.geomspace(np.finfo(dtype).tiny, 1.0, 4096)
    x = np.concatenate([np.linspace(lo, hi, n), rng.uniform(lo, hi, n), small, -small, [lo, hi, 0.0]])
    return x.astype(dtype)


def relative_error(x, got):
    ref = np.exp(x.astype(np.longdouble))
    return np.abs((got.astype(np.longdouble) - ref) / ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_accuracy_over_the_normal_range(dtype):
    x = normal_range_inputs(dtype)
    got = vexp_array(x)
    assert got.dtype == dtype
    worst = float(relative_error(x, got).max()) / float(np.finfo(dtype).eps)
    assert worst <= MAX_REL_ERROR_EPS, f"max relative error {worst:.2f} eps"


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_ends_of_the_normal_range_are_computed_not_cut_off(dtype):
    # just inside each end the true value is a normal number: vexp must give it, not 0 or inf
    ln_tiny, ln_max = limits(dtype)
    inside = np.array([np.nextafter(dtype(ln_tiny), dtype(0)), np.nextafter(dtype(ln_max), dtype(0))], dtype)
    got = vexp_array(inside)
    fi = np.finfo(dtype)
    assert fi.tiny <= got[0] and got[1] <= fi.max and np.all(np.isfinite(got))
    assert float(relative_error(inside, got).max()) <= MAX_REL_ERROR_EPS * float(fi.eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_below_the_normal_range_is_exactly_zero(dtype):
    ln_tiny, _ = limits(dtype)
    fi = np.finfo(dtype)
    below = np.nextafter(dtype(ln_tiny), dtype(-np.inf))
    x = np.array([below, below - 1, -1000, -fi.max, -np.inf], dtype)
    assert np.all(np.exp(x[:-1].astype(np.longdouble)) < fi.tiny)  # (really below the normal range)
    got = vexp_array(x)
    assert np.all(got == 0) and not np.any(np.signbit(got))


@pytest.mark.parametrize("dtype", DTYPES)
def test_beyond_the_overflow_limit_is_inf(dtype):
    _, ln_max = limits(dtype)
    fi = np.finfo(dtype)
    above = np.nextafter(dtype(ln_max), dtype(np.inf))
    x = np.array([above, above + 1, 1000, fi.max, np.inf], dtype)
    with np.errstate(over="ignore"):  # exp(max) overflows even long double: inf > max holds all the same
        assert np.all(np.exp(x[:-1].astype(np.longdouble)) > fi.max)
    assert np.all(vexp_array(x) == np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_stays_nan_in_its_own_lane(dtype):
    x = np.array([np.nan, 0.0, -np.nan, 1.0, np.nan, -np.inf, np.inf, 2.0], dtype)
    got = vexp_array(x)
    assert np.all(np.isnan(got[[0, 2, 4]]))
    np.testing.assert_array_equal(got[[1, 3, 5, 6]], np.array([1.0, np.e, 0.0, np.inf], dtype))
    assert got[7] == pytest.approx(np.exp(2.0), rel=float(MAX_REL_ERROR_EPS * np.finfo(dtype).eps))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_limits_in_the_code_are_the_dtypes_own(dtype):
    # EXP_LIMITS is written out by hand in fused_simd: it must be ln(tiny) and ln(max) to the dtype's precision
    from numba import types

    lo, hi = EXP_LIMITS[types.float64 if dtype == np.float64 else types.float32]
    ln_tiny, ln_max = limits(dtype)
    assert dtype(lo) == dtype(ln_tiny) and dtype(hi) == dtype(ln_max)


@njit(cache=True)
def exp_shifted_slice(buf, lo, hi, shift):
    exp_shifted(buf[lo:hi], shift, np.empty(vwidth(buf), buf.dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 8, 13])
def test_exp_shifted_writes_only_its_row(dtype, n):
    # a row of any length inside a larger buffer (the next row's scores follow it): only the row changes
    buf = np.arange(-40, 0, dtype=dtype) / 4
    got = buf.copy()
    exp_shifted_slice(got, 5, 5 + n, dtype(-1.5))
    np.testing.assert_array_equal(got[:5], buf[:5])
    np.testing.assert_array_equal(got[5 + n:], buf[5 + n:])
    np.testing.assert_array_equal(got[5:5 + n], vexp_array(buf[5:5 + n] - dtype(-1.5)))


Buffers = namedtuple("Buffers", "ids rows cube")


@njit(cache=True)
def take_all_of(buffers, j):
    return take_all(buffers, j)


def test_take_all_takes_one_index_of_every_field():
    # what fused_model.slot and fused_batch.group do: fields of several dtypes and ranks, one leading axis
    b = Buffers(np.arange(6, dtype=np.int64).reshape(3, 2), np.arange(12.0).reshape(3, 4),
                np.arange(24, dtype=np.float32).reshape(3, 2, 4))
    got = take_all_of(b, 1)
    assert type(got) is Buffers
    for field, want in zip(got, b):
        assert field.dtype == want.dtype
        np.testing.assert_array_equal(field, want[1])
    got.rows[0] = -1.0  # a view, not a copy
    assert b.rows[1, 0] == -1.0
