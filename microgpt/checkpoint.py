"""models/<scenario>/model.json: write atomically, read with validation (SPEC §5).

    {"format": "microgpt", "version": 1,
     "config": {...resolved config...}, "uchars": [...], "dataset": {"source", "sha256"},
     "backend": "python", "dtype": "float64",
     "weights": {name: [[float]]},
     "train_state": {"step", "adam_m", "adam_v", "rng_state", "num_docs_seen"} | null}

Floats are written with repr, so float64 weights round-trip exactly.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from .config import Config, config_from_dict
from .errors import CheckpointError, ConfigError
from .params import param_shapes

FORMAT = "microgpt"
VERSION = 1


def default_path(scenario: str) -> str:
    return os.path.join("models", scenario, "model.json")


@dataclass
class Checkpoint:
    config: Config
    uchars: list[str]
    weights: dict[str, list]
    dataset: dict
    backend: str = "python"
    dtype: str = "float64"
    train_state: dict | None = None

    @property
    def vocab_size(self) -> int:
        return len(self.uchars) + 1


def save(path: str, ckpt: Checkpoint) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A reader sees the old file or the new one, never a half-written one, even
    if this process is killed mid-write.
    """
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "config": ckpt.config.to_dict(),
        "uchars": ckpt.uchars,
        "dataset": ckpt.dataset,
        "backend": ckpt.backend,
        "dtype": ckpt.dtype,
        "weights": ckpt.weights,
        "train_state": ckpt.train_state,
    }
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, allow_nan=False, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(path: str) -> Checkpoint:
    """Read and validate a checkpoint; CheckpointError says what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such model file (train one with: python -m microgpt.train)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read: {e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not a valid model file (JSON error: {e.msg} at line {e.lineno}, "
                              f"column {e.colno}; truncated?)") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a valid model file (JSON nested too deeply)") from None
    try:
        return from_dict(doc)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _need(doc: dict, key: str, types, what: str):
    if key not in doc:
        raise CheckpointError(f"missing key '{key}'")
    if not isinstance(doc[key], types):
        raise CheckpointError(f"'{key}' must be {what}")
    return doc[key]


def _check_matrix(value: Any, shape: tuple[int, int], where: str) -> list:
    rows, cols = shape
    if not isinstance(value, list) or len(value) != rows:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise CheckpointError(f"{where}: expected shape {rows}x{cols}, got {got} rows")
    for r, row in enumerate(value):
        if not isinstance(row, list) or len(row) != cols:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise CheckpointError(f"{where}: expected shape {rows}x{cols}, row {r} has {got} columns")
        for x in row:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise CheckpointError(f"{where}: row {r} holds {json.dumps(x)[:30]}, not a finite number")
    return value


def _check_params(value: Any, shapes: dict, key: str) -> dict:
    if not isinstance(value, dict):
        raise CheckpointError(f"'{key}' must be an object of parameter matrices")
    for name in value:
        if name not in shapes:
            raise CheckpointError(f"'{key}' has an unknown parameter '{name}'")
    for name, shape in shapes.items():
        if name not in value:
            raise CheckpointError(f"'{key}' is missing parameter '{name}'")
        _check_matrix(value[name], shape, f"{key}.{name}")
    return value


def from_dict(doc: Any) -> Checkpoint:
    if not isinstance(doc, dict):
        raise CheckpointError("not a microgpt model file (the top level is not an object)")
    if doc.get("format") != FORMAT:
        raise CheckpointError("not a microgpt model file (no \"format\": \"microgpt\")")
    version = doc.get("version")
    if version != VERSION:
        raise CheckpointError(f"model format version {version!r} is not supported (this microgpt reads version "
                              f"{VERSION}); retrain or use the matching microgpt")
    try:
        config = config_from_dict(_need(doc, "config", dict, "an object"), "config")
    except ConfigError as e:
        raise CheckpointError(f"invalid config: {e}") from None
    uchars = _need(doc, "uchars", list, "a list of characters")
    if not uchars or any(not isinstance(c, str) or len(c) != 1 for c in uchars) or len(set(uchars)) != len(uchars):
        raise CheckpointError("'uchars' must be a non-empty list of distinct single characters")
    dataset = doc.get("dataset") or {}
    if not isinstance(dataset, dict):
        raise CheckpointError("'dataset' must be an object")
    shapes = param_shapes(config.model, len(uchars) + 1)
    weights = _check_params(_need(doc, "weights", dict, "an object"), shapes, "weights")
    state = doc.get("train_state")
    if state is not None:
        if not isinstance(state, dict):
            raise CheckpointError("'train_state' must be an object or null")
        step = _need(state, "step", int, "an integer")
        if isinstance(step, bool) or step < 0:
            raise CheckpointError("'train_state.step' must be a non-negative integer")
        _check_params(_need(state, "adam_m", dict, "an object"), shapes, "train_state.adam_m")
        _check_params(_need(state, "adam_v", dict, "an object"), shapes, "train_state.adam_v")
        rng = state.get("rng_state")
        if rng is not None and not (isinstance(rng, list) and len(rng) == 3 and isinstance(rng[1], list)
                                    and len(rng[1]) == 625 and all(isinstance(x, int) for x in rng[1])):
            raise CheckpointError("'train_state.rng_state' is not a Python random state")
    backend = doc.get("backend", "python")
    dtype = doc.get("dtype", "float64")
    if not isinstance(backend, str) or not isinstance(dtype, str):
        raise CheckpointError("'backend' and 'dtype' must be strings")
    return Checkpoint(config, uchars, weights, dataset, backend, dtype, state)


def rng_state_to_json(state: tuple) -> list:
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def rng_state_from_json(state: list) -> tuple:
    version, internal, gauss_next = state
    return (version, tuple(internal), gauss_next)
