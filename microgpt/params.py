"""Parameter names, shapes, order, and the reference initialisation.

Every backend starts from the weights `init_weights` draws here, in pure
Python, so that all of them can be compared step by step (SPEC §1, §2).
Weights are matrices stored row-major as [out][in], so y = W x.
"""

from __future__ import annotations

import random

from .config import ModelConfig


def param_shapes(model: ModelConfig, vocab_size: int) -> dict[str, tuple[int, int]]:
    """Name -> (rows, cols), in the order that fixes the RNG draws and the checkpoint."""
    C, T, V = model.n_embd, model.block_size, vocab_size
    shapes = {"wte": (V, C), "wpe": (T, C), "lm_head": (V, C)}
    for i in range(model.n_layer):
        shapes[f"layer{i}.attn_wq"] = (C, C)
        shapes[f"layer{i}.attn_wk"] = (C, C)
        shapes[f"layer{i}.attn_wv"] = (C, C)
        shapes[f"layer{i}.attn_wo"] = (C, C)
        shapes[f"layer{i}.mlp_fc1"] = (4 * C, C)
        shapes[f"layer{i}.mlp_fc2"] = (C, 4 * C)
    return shapes


def num_params(model: ModelConfig, vocab_size: int) -> int:
    return sum(r * c for r, c in param_shapes(model, vocab_size).values())


def param_offsets(shapes: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Name -> where its matrix starts in one flat vector of every parameter, row by row, in `shapes` order."""
    offsets, offset = {}, 0
    for name, (rows, cols) in shapes.items():
        offsets[name] = offset
        offset += rows * cols
    return offsets


def param_views(flat, shapes: dict[str, tuple[int, int]]) -> dict:
    """Name -> the (rows, cols) view of its matrix inside the flat array `flat` (laid out as `param_offsets`)."""
    return {name: flat[off:off + shapes[name][0] * shapes[name][1]].reshape(shapes[name])
            for name, off in param_offsets(shapes).items()}


def is_projection(name: str) -> bool:
    """The matrices `zero_init_proj` zeroes: the ones that write into the residual stream."""
    return name.endswith(("attn_wo", "mlp_fc2"))


def init_weights(model: ModelConfig, vocab_size: int, rng: random.Random) -> dict[str, list[list[float]]]:
    """Gaussian init drawn from `rng` in parameter order, row by row.

    A zero-initialised matrix still draws gauss(0, 0) per element so that the
    stream stays aligned with the non-zero case.
    """
    weights = {}
    for name, (rows, cols) in param_shapes(model, vocab_size).items():
        std = 0.0 if model.zero_init_proj and is_projection(name) else model.init_std
        weights[name] = [[rng.gauss(0, std) for _ in range(cols)] for _ in range(rows)]
    return weights
