"""kernels/fused_dropout.py: the compiled hash is microgpt/dropout.py's, and the masks are its masks."""

import random

import numpy as np
import pytest

from microgpt import dropout
from microgpt.kernels import fused_dropout, fused_train


def test_the_compiled_hash_gives_the_same_integers():
    rng = random.Random(0)
    for _ in range(2000):
        h, x = rng.getrandbits(32), rng.getrandbits(45)  # x past 32 bits: folded in first
        assert fused_dropout.combine(h, x) == dropout.combine(h, x)
        args = [rng.getrandbits(31) for _ in range(6)]
        assert fused_dropout.row_key(*args) == dropout.row_key(*args)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fill_masks_writes_the_rows_of_each_document(dtype):
    p, seed, step, L, C = 0.25, 42, 11, 2, 16
    lengths = [3, 5, 1]
    starts = np.cumsum([0] + lengths).astype(np.int64)
    hyper = fused_train.Hyper(0.01, 0.85, 0.99, 1e-8, fused_train.LINEAR, 100, 0.0, seed, dropout.threshold(p),
                              dropout.scale(p))
    mask = np.full((L, dropout.SITES, starts[-1] + 2, C), -1.0, dtype)  # 2 rows past the documents
    fused_dropout.fill_masks(mask, starts, len(lengths), 4, step, hyper)  # documents 4, 5, 6 of the step
    expected = dropout.masks_array(seed, step, [4, 5, 6], L, max(lengths), C, p, dtype)
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(mask[:, :, starts[i]:starts[i] + n], expected[i, :, :, :n])
    assert np.all(mask[:, :, starts[-1]:] == -1)  # nothing written past the documents' rows


def test_mul_rows_multiplies_the_first_n_rows_in_place():
    x = np.arange(12.0).reshape(4, 3)
    m = np.full((4, 3), 2.0)
    fused_dropout.mul_rows(x, x, m, 3)
    np.testing.assert_array_equal(x, np.vstack([2 * np.arange(9.0).reshape(3, 3), [[9.0, 10.0, 11.0]]]))
