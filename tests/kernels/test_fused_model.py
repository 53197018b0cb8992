"""microgpt/kernels/fused_model.py: the activation buffers, and where each parameter lives in the flat vector."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from microgpt.config import load_scenario  # noqa: E402
from microgpt.kernels import fused_model  # noqa: E402
from microgpt.kernels.fused_layers import RELU2  # noqa: E402
from microgpt.kernels.fused_simd import VECTOR_BYTES  # noqa: E402
from microgpt.params import num_params, param_offsets, param_shapes  # noqa: E402

ALICE = load_scenario("alice").model  # C 32, H 4, L 2, T 128
MODEL = fused_model.Model(60, ALICE.n_embd, ALICE.n_head, ALICE.n_layer, ALICE.block_size, RELU2, 8 ** -0.5)


def test_the_flat_layout_is_params_one_offset_for_offset():
    """num_params and offsets(model, layer) are params.num_params and param_offsets, computed in compiled code;
    a layer's wq, wk, wv are adjacent, so qkv is one (3C, C) matrix."""
    shapes = param_shapes(ALICE, 60)
    want = param_offsets(shapes)
    assert fused_model.num_params(MODEL) == num_params(ALICE, 60)
    C = ALICE.n_embd
    for layer in range(ALICE.n_layer):
        off = fused_model.offsets(MODEL, layer)
        assert (off.wte, off.wpe, off.lm_head) == (want["wte"], want["wpe"], want["lm_head"])
        p = f"layer{layer}."
        assert (off.qkv, off.wo, off.fc1, off.fc2) == (want[p + "attn_wq"], want[p + "attn_wo"], want[p + "mlp_fc1"],
                                                       want[p + "mlp_fc2"])
        assert (want[p + "attn_wk"], want[p + "attn_wv"]) == (off.qkv + C * C, off.qkv + 2 * C * C)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_new_acts_gives_every_buffer_of_act_shapes_per_slot(dtype):
    """Each named buffer once, with the slots along a first axis, T rounded up to whole vectors where it is
    the last axis (Tp); slot(acts, j) is slot j's views, which write through."""
    acts = fused_model.new_acts(MODEL, dtype, 3)
    T, lanes = MODEL.block_size, VECTOR_BYTES // np.dtype(dtype).itemsize
    Tp = -(-T // lanes) * lanes
    shapes = fused_model.act_shapes(60, 32, 4, 2, T, Tp)
    assert acts._fields == tuple(shapes)
    assert all(getattr(acts, n).shape == (3,) + s and getattr(acts, n).dtype == dtype for n, s in shapes.items())
    one = fused_model.slot(acts, 1)
    one.emb[0, 0] = 5.0
    assert acts.emb[1, 0, 0] == 5.0 and acts.emb[0, 0, 0] == acts.emb[2, 0, 0] == 0.0
