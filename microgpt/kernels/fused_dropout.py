"""Residual dropout on the fused batch path: microgpt/dropout.py's masks, compiled.

`fill_masks` writes a group's masks, mask[layer, site, row, channel] = dropout.scale(p) where
the element is kept and 0 where it is dropped, for the rows of each of its documents; the
batch path multiplies a block's projection output by them before the residual add, and the
gradient flowing back into that projection by the same ones. The hash is dropout.py's own
functions compiled (tests/kernels/test_fused_dropout.py holds the two to the same integers).
"""

from __future__ import annotations

from numba import njit

from .. import dropout
from ..dropout import GOLDEN, M32, SITES
from .fused_layers import JIT

# not cache=True: Numba would open a cache beside dropout.py, outside the source-keyed folder
# (compile_cache.py); it is compiled into each cached caller, and dropout.py is among the digest's sources
mix32 = njit(**{**JIT, "cache": False})(dropout.mix32)


@njit(**JIT)
def combine(h, x):
    """dropout.combine, on the compiled mix32."""
    return mix32(h ^ (((x & M32) * GOLDEN) & M32))


@njit(**JIT)
def row_key(seed, step, doc, layer, site, pos):
    """dropout.row_key, on the compiled combine."""
    h = combine(mix32(seed & M32), step)
    h = combine(h, doc)
    h = combine(h, layer * SITES + site)
    return combine(h, pos)


@njit(**JIT)
def fill_masks(mask, starts, n_docs, first_doc, step, hyper):
    """mask[l, site, r, :] for the rows of documents first_doc .. first_doc + n_docs - 1 of step `step`.

    mask (L, SITES, R, C); document i of the group is rows starts[i] .. starts[i+1]-1, positions from 0.
    """
    L, C = mask.shape[0], mask.shape[3]
    thr = hyper.dropout_threshold
    keep, drop = mask.dtype.type(hyper.dropout_scale), mask.dtype.type(0.0)
    for i in range(n_docs):
        for li in range(L):
            for site in range(SITES):
                for r in range(starts[i], starts[i + 1]):
                    key = row_key(hyper.seed, step, first_doc + i, li, site, r - starts[i])
                    h = 0
                    for c in range(C):
                        if c & 3 == 0:  # dropout.element_byte: one hash, 4 channels' bytes
                            h = combine(key, c >> 2)
                        byte = (h >> (8 * (c & 3))) & 255
                        mask[li, site, r, c] = keep if byte >= thr else drop


@njit(**JIT)
def mul_rows(out, x, m, n):
    """out[:n] = x[:n] * m[:n], element by element (out may be x)."""
    for t in range(n):
        for c in range(x.shape[1]):
            out[t, c] = x[t, c] * m[t, c]
