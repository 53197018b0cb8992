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
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

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


STALE_TEMP_SECONDS = 3600  # no save takes this long: a temporary file this old was left by a killed writer


def save(path: str, ckpt: Checkpoint) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A reader sees the old file or the new one, never a half-written one, even
    if this process is killed mid-write or another process saves to the same
    path at the same time (each save is whole; the last rename wins). A
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
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    try:
        os.makedirs(folder, exist_ok=True)
        _remove_stale_temporaries(folder, name)
        mode = _file_mode(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except (FileExistsError, NotADirectoryError) as e:  # a parent of `path` is a file
        raise CheckpointError(f"{path}: cannot save: {e.filename} is a file, not a folder") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot save: {e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, allow_nan=False, separators=(",", ":"))
            f.flush()
            os.fchmod(f.fileno(), mode)  # mkstemp makes it private (0600); the model file is an ordinary file
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):  # the reason without the temporary file's name, which means nothing to the user
            raise CheckpointError(f"{path}: cannot save: {e.strerror or e}") from None
        if isinstance(e, ValueError):  # json refuses NaN and infinity
            raise CheckpointError(f"{path}: not saved: the model holds a NaN or infinite number "
                                  "(training diverged?)") from None
        raise
    _fsync_folder(folder)  # so the rename itself survives a power cut


def _file_mode(path: str) -> int:
    """The mode of the file being replaced, or what a newly created file would get under the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)  # the only way to read the umask is to set it (and put it back)
        os.umask(umask)
        return 0o666 & ~umask


def _remove_stale_temporaries(folder: str, name: str) -> None:
    """Delete temporary files of `name` that writers killed mid-save left behind (and nobody still writes)."""
    now = time.time()
    for entry in os.scandir(folder):
        if entry.name.startswith(f".{name}.") and entry.name.endswith(".tmp"):
            try:
                if now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                    os.unlink(entry.path)
            except OSError:
                pass


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
