"""microgpt.params: the parameters' names, shapes and order, their flat layout, and the reference initialisation."""

from __future__ import annotations

import random

import numpy as np

from conftest import tiny_config_dict
from microgpt.config import config_from_dict, load_scenario
from microgpt.params import init_weights, is_projection, num_params, param_offsets, param_shapes, param_views

NAMES = load_scenario("names").model  # C 16, H 4, L 1, T 16; the names vocabulary is 26 letters and BOS
LAYER = ["attn_wq", "attn_wk", "attn_wv", "attn_wo", "mlp_fc1", "mlp_fc2"]


def test_shapes_are_row_major_out_by_in_in_the_order_of_the_draws():
    """wte, wpe, lm_head, then each layer's six matrices: (rows, cols) = (out, in), so y = W x."""
    shapes = param_shapes(NAMES, 27)
    assert list(shapes) == ["wte", "wpe", "lm_head"] + [f"layer0.{m}" for m in LAYER]
    assert shapes == {"wte": (27, 16), "wpe": (16, 16), "lm_head": (27, 16), "layer0.attn_wq": (16, 16),
                      "layer0.attn_wk": (16, 16), "layer0.attn_wv": (16, 16), "layer0.attn_wo": (16, 16),
                      "layer0.mlp_fc1": (64, 16), "layer0.mlp_fc2": (16, 64)}
    two = param_shapes(load_scenario("alice").model, 60)
    assert [n for n in two if n.startswith("layer")] == [f"layer{i}.{m}" for i in (0, 1) for m in LAYER]


def test_counts_are_the_sum_of_the_shapes():
    """names has 4,192 parameters (2·27·16 + 16·16 + 12·16²); each layer adds 12 C²."""
    assert num_params(NAMES, 27) == 2 * 27 * 16 + 16 * 16 + 12 * 16 * 16 == 4192
    alice = load_scenario("alice").model  # C 32, T 128, 2 layers
    assert num_params(alice, 60) == 2 * 60 * 32 + 128 * 32 + 2 * 12 * 32 * 32


def test_flat_offsets_follow_the_order_and_views_write_through():
    """param_offsets lays every matrix after the one before; param_views are views of the flat array, not copies."""
    shapes = param_shapes(NAMES, 27)
    offsets = param_offsets(shapes)
    assert offsets["wte"] == 0 and offsets["wpe"] == 27 * 16 and offsets["lm_head"] == 27 * 16 + 16 * 16
    ends = [offsets[n] + r * c for n, (r, c) in shapes.items()]
    assert list(offsets.values())[1:] == ends[:-1] and ends[-1] == num_params(NAMES, 27)
    flat = np.zeros(num_params(NAMES, 27))
    views = param_views(flat, shapes)
    assert all(views[n].shape == shape for n, shape in shapes.items())
    views["layer0.mlp_fc1"][1, 2] = 7.0
    assert flat[offsets["layer0.mlp_fc1"] + 1 * 16 + 2] == 7.0


def test_projections_are_the_matrices_that_write_into_the_residual_stream():
    """is_projection: attn_wo and mlp_fc2 of every layer, nothing else."""
    names = param_shapes(load_scenario("alice").model, 60)
    assert [n for n in names if is_projection(n)] == ["layer0.attn_wo", "layer0.mlp_fc2", "layer1.attn_wo",
                                                        "layer1.mlp_fc2"]


def test_the_reference_initialisation_draws_gauss_per_element_in_order():
    """init_weights(rng) is rng.gauss(0, init_std) for every element, matrix by matrix, row by row."""
    weights = init_weights(NAMES, 27, random.Random(42))
    assert weights["wte"][0][:3] == [-0.011527226366234268, -0.013832288026521545, -0.008905268925412997]
    rng = random.Random(42)
    for name, (rows, cols) in param_shapes(NAMES, 27).items():
        assert weights[name] == [[rng.gauss(0, 0.08) for _ in range(cols)] for _ in range(rows)], name
    assert weights["layer0.mlp_fc2"][-1][-1] == 0.013323935780253003  # the last of the 4,192 draws


def test_zero_init_projections_still_draw_from_the_stream():
    """zero_init_proj zeroes attn_wo and mlp_fc2 but draws gauss(0, 0) for them: the other matrices do not move."""
    cfg = config_from_dict(tiny_config_dict(zero_init_proj=True))
    a, b = random.Random(1), random.Random(1)
    w = init_weights(cfg.model, 5, a)
    plain = init_weights(config_from_dict(tiny_config_dict()).model, 5, b)
    assert a.random() == b.random()
    assert all(x == 0 for row in w["layer0.attn_wo"] + w["layer0.mlp_fc2"] for x in row)
    assert w["layer0.mlp_fc1"] == plain["layer0.mlp_fc1"]
