"""microgpt.flops: the FLOP count against an operation-by-operation count, and MFU."""

from __future__ import annotations

import pytest

from microgpt import flops
from microgpt.config import config_from_dict, load_scenario
from microgpt.params import param_shapes


def counted_flops(model, V, n):
    """Forward+backward FLOPs of one document, counted operation by operation (forward x 3)."""
    forward = 0
    for t in range(n):  # position t
        for name, (rows, cols) in param_shapes(model, V).items():
            if name not in ("wte", "wpe"):  # looked up, not multiplied
                forward += 2 * rows * cols
        for _ in range(model.n_layer):
            for _ in range(model.n_head):
                hd = model.n_embd // model.n_head
                forward += 2 * hd * (t + 1)  # scores q.k over the t+1 visible keys
                forward += 2 * hd * (t + 1)  # sum of att * v
    return 3 * forward  # the backward of y = W x is two products of the same size (dx and dW)


@pytest.mark.parametrize("model", [dict(n_embd=16, n_head=4, n_layer=1, block_size=16),
                                   dict(n_embd=32, n_head=4, n_layer=2, block_size=128),
                                   dict(n_embd=8, n_head=1, n_layer=3, block_size=5)])
@pytest.mark.parametrize("n", [1, 5])
def test_flops_match_an_operation_count(model, n):
    m = config_from_dict({"model": model}).model
    V = 27
    n = min(n, m.block_size)
    assert flops.flops_per_doc(m, V, n) == counted_flops(m, V, n)
    assert flops.flops_for_docs(m, V, [n, n]) == 2 * counted_flops(m, V, n)
    # per token at seq_len n: the matmul part is per position, the attention part averages (n+1)/2 keys
    assert flops.flops_per_token(m, V, n) * n == counted_flops(m, V, n)


def test_flops_of_the_scenarios():
    names, alice = load_scenario("names").model, load_scenario("alice").model
    # names: 3,504 matmul weights (12 * 16^2 + 27 * 16); 6 * 3,504 + 6 * 1 * 16 * (16 + 1)
    assert flops.matmul_params(names, 27) == 3504
    assert flops.flops_per_token(names, 27) == 22656
    assert flops.flops_per_token(alice, 73) == 6 * (2 * 12 * 32 * 32 + 73 * 32) + 6 * 2 * 32 * 129
    with pytest.raises(ValueError):
        flops.flops_per_token(names, 27, seq_len=0)


def test_mfu():
    # 1e6 tokens/s x 1e4 FLOPs = 10 GFLOP/s, out of a 40 GFLOP/s peak
    assert flops.mfu(1e6, 1e4, 40.0) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        flops.mfu(1.0, 1.0, 0.0)
