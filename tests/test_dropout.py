"""microgpt/dropout.py: the hashed masks, one definition for Python ints and numpy arrays."""

import numpy as np
import pytest

from microgpt import dropout


def test_the_numpy_masks_are_the_pure_python_rows():
    p, seed, step, docs, L, T, C = 0.3, 42, 7, [0, 5], 2, 4, 9
    masks = dropout.masks_array(seed, step, docs, L, T, C, p, np.float64)
    assert masks.shape == (len(docs), L, dropout.SITES, T, C)
    for i, doc in enumerate(docs):
        for li in range(L):
            for site in range(dropout.SITES):
                for t in range(T):
                    row = dropout.row_mask(dropout.row_key(seed, step, doc, li, site, t), C, p)
                    assert masks[i, li, site, t].tolist() == row


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_a_fraction_p_is_dropped_and_the_rest_scaled(p):
    masks = dropout.masks_array(1, 3, range(64), 3, 16, 128, p, np.float64)
    dropped = float(np.mean(masks == 0))
    assert abs(dropped - dropout.threshold(p) / 256) < 0.003  # 393,216 draws: the standard error is below 0.001
    assert abs(dropout.threshold(p) / 256 - p) <= 1 / 512  # p to the nearest 1/256
    assert set(np.unique(masks).tolist()) == {0.0, dropout.scale(p)}
    assert dropout.scale(p) == 256 / (256 - dropout.threshold(p))  # the expected multiplier is 1


def test_p_zero_keeps_everything():
    assert dropout.threshold(0.0) == 0
    assert np.all(dropout.masks_array(1, 0, [0], 1, 4, 8, 0.0, np.float32) == 1)


@pytest.mark.parametrize("change", ["seed", "step", "doc", "layer", "site", "pos"])
def test_every_index_moves_the_mask(change):
    base = dict(seed=42, step=3, doc=1, layer=0, site=0, pos=2)
    other = {**base, change: base[change] + 1}
    row = dropout.row_mask(dropout.row_key(**base), 64, 0.5)
    assert dropout.row_mask(dropout.row_key(**other), 64, 0.5) != row


def test_big_integers_fold_in_to_32_bits_the_same_way():
    big = 2**40 + 12345
    assert dropout.combine(7, big) == dropout.combine(7, big & dropout.M32)
    arr = dropout.combine(np.uint64(7), np.array([big], np.uint64))
    assert int(arr[0]) == dropout.combine(7, big)


def test_a_small_p_still_drops_and_a_large_one_still_keeps():
    assert dropout.threshold(0.0001) == 1 and dropout.threshold(0.9999) == 255
