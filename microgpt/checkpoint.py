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
import random
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from . import output_path
from .config import DTYPES, Config, config_from_dict, preview, read_text
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


class NotFinite(CheckpointError):
    """The model holds a NaN or an infinity: no file anywhere can hold it as JSON."""


def check_output(path: str) -> None:
    """Before training: everything that would make the final save to `path` fail and can be known now."""
    output_path.check_file(path, "--output", CheckpointError)


def save(path: str, ckpt: Checkpoint) -> None:
    """Write to a temporary file beside `path`'s final target, fsync, then rename onto that target.

    A reader sees the old file or the new one, never a half-written one, even
    if this process is killed mid-write or another process saves to the same
    path at the same time (each save is whole; the last rename wins). A
    symbolic link at `path` stays a link: the model lands where it points. A
    problem writing is a CheckpointError and leaves the old file as it was.
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
    try:
        with output_path.atomic_write(path, "--output", CheckpointError) as f:
            json.dump(doc, f, allow_nan=False, separators=(",", ":"))
    except ValueError:  # json refuses NaN and infinity
        raise NotFinite(f"{path}: not saved: the model holds a NaN or infinite number "
                        "(training diverged?)") from None


def save_or_rescue(path: str, ckpt: Checkpoint) -> None:
    """save(); when that fails (a full disk, a folder gone), save a copy in the temporary folder instead.

    Either way the error names what happened: where the trained model is now and how to continue
    from it, or that it could not be saved anywhere and which flag to change, so no run ends with
    its result silently gone. The rescue goes to tempfile.gettempdir() ($TMPDIR, else /tmp), which
    is often another file system than the project's (a RAM disk or the system disk).
    """
    try:
        save(path, ckpt)
    except NotFinite:
        raise
    except CheckpointError as e:
        spare = tempfile.gettempdir()
        stem = os.path.splitext(os.path.basename(path))[0] or "model"
        rescue = None
        try:
            # a fresh name: never replace an earlier rescue
            fd, rescue = tempfile.mkstemp(prefix=f"microgpt-rescued-{stem}-", suffix=".json", dir=spare)
            os.close(fd)
            save(rescue, ckpt)
        except (OSError, CheckpointError) as second:
            if rescue is not None:
                try:
                    os.unlink(rescue)
                except OSError:
                    pass
            reason = second.strerror if isinstance(second, OSError) else str(second).rsplit(": ", 1)[-1]
            raise CheckpointError(f"{e}; a copy in {spare} failed too ({reason}): nothing was saved; free some "
                                  "space or pass --output PATH on another disk, and train again") from None
        home = os.path.realpath(path) if os.path.islink(path) else path  # moved onto a link it would replace it
        raise CheckpointError(f"{e}; the trained model was saved to {rescue} instead: move it to {home}, "
                              f"or continue from it with --resume --output {rescue}") from None


def load(path: str) -> Checkpoint:
    """Read and validate a checkpoint; CheckpointError says what is wrong."""
    text = read_text(path, CheckpointError, "no such model file (train one with: python -m microgpt.train)")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not a valid model file (JSON error: {e.msg} at line {e.lineno}, "
                              f"column {e.colno}; truncated?)") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a valid model file (JSON nested too deeply)") from None
    except ValueError:  # Python refuses to read an integer of more than 4300 digits
        raise CheckpointError(f"{path}: not a valid model file (a number too long to read)") from None
    try:
        return from_dict(doc)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _need(doc: dict, key: str, types, what: str, where: str = ""):
    if key not in doc:
        raise CheckpointError(f"missing key '{where}{key}'")
    if not isinstance(doc[key], types):
        raise CheckpointError(f"'{where}{key}' must be {what}")
    return doc[key]


_FLOAT_MAX = sys.float_info.max


def _is_number(x) -> bool:
    """A finite JSON number that converts to a float (an int may be too large to)."""
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return -_FLOAT_MAX <= x <= _FLOAT_MAX
    return isinstance(x, float) and math.isfinite(x)


def _check_matrix(value: Any, shape: tuple[int, int], where: str, nonnegative: bool = False) -> list:
    rows, cols = shape
    if not isinstance(value, list) or len(value) != rows:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise CheckpointError(f"{where}: expected shape {rows}x{cols}, got {got} rows")
    for r, row in enumerate(value):
        if not isinstance(row, list) or len(row) != cols:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise CheckpointError(f"{where}: expected shape {rows}x{cols}, row {r} has {got} columns")
        for x in row:
            if not _is_number(x):
                raise CheckpointError(f"{where}: row {r} holds {preview(x, 30)}, not a finite number")
            if nonnegative and x < 0:  # a second moment is a mean of squares; Adam takes its square root
                raise CheckpointError(f"{where}: row {r} holds {preview(x, 30)}, but must be >= 0")
    return value


def _check_params(value: Any, shapes: dict, key: str, nonnegative: bool = False) -> dict:
    if not isinstance(value, dict):
        raise CheckpointError(f"'{key}' must be an object of parameter matrices")
    for name in value:
        if name not in shapes:
            raise CheckpointError(f"'{key}' has an unknown parameter {preview(name, 40)}")
    for name, shape in shapes.items():
        if name not in value:
            raise CheckpointError(f"'{key}' is missing parameter '{name}'")
        _check_matrix(value[name], shape, f"{key}.{name}", nonnegative)
    return value


def _check_rng_state(rng: Any) -> None:
    """What random.Random.setstate accepts, checked here so that resuming cannot fail later."""
    ok = (isinstance(rng, list) and len(rng) == 3 and type(rng[0]) is int and rng[0] == 3
          and isinstance(rng[1], list) and len(rng[1]) == 625
          and all(type(x) is int and 0 <= x < 2 ** 32 for x in rng[1]) and rng[1][-1] <= 624
          and (rng[2] is None or (isinstance(rng[2], float) and math.isfinite(rng[2]))))
    if ok:
        try:
            random.Random().setstate(rng_state_from_json(rng))
        except (ValueError, TypeError, OverflowError):
            ok = False
    if not ok:
        raise CheckpointError("'train_state.rng_state' is not a Python random state")


def from_dict(doc: Any) -> Checkpoint:
    if not isinstance(doc, dict):
        raise CheckpointError("not a microgpt model file (the top level is not an object)")
    if doc.get("format") != FORMAT:
        raise CheckpointError("not a microgpt model file (no \"format\": \"microgpt\")")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        raise CheckpointError(f"model format version {preview(version, 30)} is not supported (this microgpt reads "
                              f"version {VERSION}); retrain or use the matching microgpt")
    try:
        config = config_from_dict(_need(doc, "config", dict, "an object"), "config")
    except ConfigError as e:
        raise CheckpointError(f"invalid config: {e}") from None
    uchars = _need(doc, "uchars", list, "a list of characters")
    if (not uchars or any(not isinstance(c, str) or len(c) != 1 or "\ud800" <= c <= "\udfff" for c in uchars)
            or len(set(uchars)) != len(uchars)):
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
        step = _need(state, "step", int, "an integer", "train_state.")
        total = config.training.num_steps
        if isinstance(step, bool) or not 0 <= step <= total:
            raise CheckpointError(f"'train_state.step' must be an integer from 0 to the run's {total} steps, "
                                  f"got {preview(step, 30)}")
        _check_params(_need(state, "adam_m", dict, "an object", "train_state."), shapes, "train_state.adam_m")
        _check_params(_need(state, "adam_v", dict, "an object", "train_state."), shapes, "train_state.adam_v",
                      nonnegative=True)
        if state.get("rng_state") is not None:
            _check_rng_state(state["rng_state"])
    backend = doc.get("backend", "python")
    dtype = doc.get("dtype", "float64")
    if not isinstance(backend, str) or not isinstance(dtype, str):
        raise CheckpointError("'backend' and 'dtype' must be strings")
    if dtype not in DTYPES:
        raise CheckpointError(f"'dtype' must be one of {', '.join(DTYPES)}, got {preview(dtype, 30)}")
    return Checkpoint(config, uchars, weights, dataset, backend, dtype, state)


def rng_state_to_json(state: tuple) -> list:
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def rng_state_from_json(state: list) -> tuple:
    version, internal, gauss_next = state
    return (version, tuple(internal), gauss_next)
