"""Residual dropout whose masks come from a hash, not from the RNG stream.

SPEC §2's training consumes no randomness, so that sampling continues the
stream where initialisation left it. `training.dropout = p` (outside the
SPEC; 0, the default, changes nothing) zeroes each output of a block's last
projection with probability p and scales the rest by 1 / (1 - p), before it
is added to the residual stream:

    x = x + mask_attn * (attention(rmsnorm(x)) Woᵀ);   x = x + mask_mlp * (act(rmsnorm(x) W1ᵀ) W2ᵀ)

Whether element (position, channel) of a site is kept is a function of
(seed, step, document of the step, layer, site, position, channel) alone: a
byte of a 32-bit hash compared with an integer threshold, so p takes steps
of 1/256 (0.3 is 77/256) and the kept elements are scaled by 256 / (256 - 77). Every backend computes the
same masks from the same integers (and python-int, numpy-uint64 and Numba
int64 arithmetic agree on the low 32 bits written here), so they train the
same numbers; a resumed run, a replay and any thread count draw the same
masks. Evaluation and sampling drop nothing.

`mix32`, `combine` and `row_key` are written with operators only, so they
take Python ints, numpy uint64 arrays (element-wise) and, compiled, Numba
integers.
"""

from __future__ import annotations

ATTN, MLP = 0, 1  # the two sites of a layer: after attn_wo, after mlp_fc2
SITES = 2
M32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9  # 2^32 / golden ratio: spreads consecutive integers over the 32 bits
LEVELS = 256  # p is rounded to a multiple of 1 / LEVELS: each element is decided by one byte of a hash


def mix32(h):
    """murmur3's 32-bit finaliser: every input bit flips about half the output bits."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & M32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & M32
    return h ^ (h >> 16)


def combine(h, x):
    """The hash of (h, x): x (>= 0) is folded in to 32 bits first."""
    return mix32(h ^ (((x & M32) * GOLDEN) & M32))


def row_key(seed, step, doc, layer, site, pos):
    """The key of one row of a site's mask: a position of one document of one step."""
    h = combine(mix32(seed & M32), step)
    h = combine(h, doc)
    h = combine(h, layer * SITES + site)
    return combine(h, pos)


def threshold(p: float) -> int:
    """A mask element is kept when its byte of the hash is >= threshold(p): p to the nearest 1/256, at least
    1/256 when p > 0 (so a small p still drops) and at most 255/256."""
    return 0 if p <= 0 else min(LEVELS - 1, max(1, round(p * LEVELS)))


def scale(p: float) -> float:
    """What a kept element is multiplied by: 1 / (the probability of keeping), so the expected output is unchanged."""
    return LEVELS / (LEVELS - threshold(p))


def element_byte(key, c):
    """Channel c's byte of row `key`: one hash gives the bytes of 4 channels (a quarter of the hashing)."""
    return (combine(key, c >> 2) >> (8 * (c & 3))) & 255


def row_mask(key: int, width: int, p: float) -> list[float]:
    """One row's multipliers: scale(p) where kept, 0.0 where dropped (pure Python, the reference)."""
    thr, s = threshold(p), scale(p)
    return [s if element_byte(key, c) >= thr else 0.0 for c in range(width)]


def masks_array(seed: int, step: int, docs, n_layer: int, T: int, C: int, p: float, dtype):
    """All masks of some documents of a step as one numpy array (len(docs), n_layer, SITES, T, C).

    `docs`: the documents' indices within the step (0 .. batch_size * grad_accum - 1). The hashes are
    computed in uint32, whose products wrap exactly as the & M32 above does.
    """
    import numpy as np

    d = np.asarray(docs, np.uint32)[:, None, None, None, None]
    layer_site = np.arange(n_layer * SITES, dtype=np.uint32).reshape(1, n_layer, SITES, 1, 1)
    pos = np.arange(T, dtype=np.uint32)[None, None, None, :, None]
    keys = combine(combine(combine(combine(mix32(seed & M32), step), d), layer_site), pos)
    h = combine(keys, np.arange((C + 3) // 4, dtype=np.uint32))  # (..., ceil(C / 4)): 4 channels a hash
    # little-endian bytes: byte j of hash c // 4 is (h >> 8j) & 255, channel c = 4 (c // 4) + j
    b = h.astype("<u4", copy=False).view(np.uint8)[..., :C]
    out = np.empty(b.shape, dtype)
    np.multiply(b >= threshold(p), out.dtype.type(scale(p)), out=out)
    return out
