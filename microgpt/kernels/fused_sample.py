"""The fused backend's sampler: sampling.next_token's softmax and draw, compiled.

sampling.next_token turns the logits into probabilities in Python and draws with
`rng.choices(range(V), weights=probs)`, which sums the weights cumulatively and
bisects for `rng.random() * total`. The two functions below do the same float64
operations in the same order, so from the same logits and the same random
number they pick the same token. The caller keeps in Python the two powers
(`temperature ** -1`, `total ** -1`): Python computes them with C pow(), which
compiled code may replace by a division that can round differently; and it
draws `rng.random()` itself, so the RNG stream is the one the python backend
consumes.

Top-k and the repetition penalty are not compiled here: when either is set,
sampling.sample takes the fused backend's logits and draws with the shared
Python code, as for every backend (see microgpt/sampling.py).
"""

from __future__ import annotations

import math

from numba import njit

from .fused_layers import JIT


@njit(**JIT)
def softmax_numerators(exps, logits, inv_t):
    """exps[i] = exp(logits[i] * inv_t - max); their sum, or NaN where a scaled logit is not finite.

    NaN sends the caller back to sampling.next_token, which rescales an
    overflowing temperature or reports unusable logits.
    """
    V = logits.shape[0]
    top = -math.inf
    for i in range(V):
        x = float(logits[i]) * inv_t  # float(): a float32 logit is widened first, as .tolist() does
        if not math.isfinite(x):
            return math.nan
        exps[i] = x
        if x > top:
            top = x
    total = 0.0
    for i in range(V):  # in order, like the Python sum
        e = math.exp(exps[i] - top)
        exps[i] = e
        total += e
    return total


@njit(**JIT)
def draw(exps, inv_total, u):
    """The index `rng.choices(range(V), weights=exps * inv_total)` returns when rng.random() gives u.

    Overwrites exps with the cumulative weights.
    """
    V = exps.shape[0]
    acc = 0.0
    for i in range(V):
        acc += exps[i] * inv_total
        exps[i] = acc
    x = u * exps[V - 1]
    lo, hi = 0, V - 1  # bisect.bisect_right(cum, x, 0, V - 1)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < exps[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo
