"""The backend registry: which backends exist, what each needs and supports, and why a combination is not run.

Every list of backends in the lab is read from here: the config's and the command lines' choices,
the asv parameters, pytest-benchmark, pyperf, the thread and scale sweeps, the tests. A new
backend appears in all of them by one entry in `REGISTRY`.

This module only declares: it imports no backend and none of numpy, numba or torch, so the config
and `--help` list the backends without them. `microgpt.backends.get_backend_class` loads a class.
"""

from __future__ import annotations

import importlib.util
from typing import NamedTuple

from ..errors import MicrogptError


class Entry(NamedTuple):
    module: str
    cls: str
    needs: tuple[str, ...]  # third-party modules it imports
    dtypes: tuple[str, ...]  # the class's `dtypes`, declared here so that asking needs no import
    extra: str = "numpy"  # the pip extra that installs `needs`
    max_timed_block: int | None = None  # longest context a benchmark times it at; None: any


# every floating-point type a backend may declare (training.dtype's choices)
DTYPES = ("float64", "float32")
# in the order the lab lists them (tables, asv parameters, --backend choices)
REGISTRY = {
    # about a minute per step at T=128: benchmarks time it on names (T=16) only
    "python": Entry("microgpt.backends.python", "PythonBackend", (), ("float64",), max_timed_block=16),
    "numpy": Entry("microgpt.backends.numpy_seq", "NumpyBackend", ("numpy", "numba"), DTYPES),
    "numpy_batched": Entry("microgpt.backends.numpy_batched", "NumpyBatchedBackend", ("numpy", "numba"),
                           DTYPES),
    "fused": Entry("microgpt.backends.fused", "FusedBackend", ("numpy", "numba"), DTYPES),
    "torch": Entry("microgpt.backends.torch_backend", "TorchBackend", ("torch",), DTYPES, "torch"),
}
# what "auto" takes where nothing was measured (resolve_name; auto_choice without a table), fastest first
AUTO_ORDER = ("fused", "python")
# what `auto` trains with (auto_choice.choose), as the config's and train's help say it
AUTO_RULE = ("the backend a scale sweep measured fastest at the nearest point ($MICROGPT_AUTO_TABLE or the shipped "
             "table), else fused when Numba is installed, else python")


def backend_choices() -> tuple[str, ...]:
    """What training.backend and every --backend accept."""
    return ("auto", *REGISTRY)


def missing_modules(name: str) -> list[str]:
    """The third-party modules backend `name` needs that are not installed."""
    return [mod for mod in REGISTRY[name].needs if importlib.util.find_spec(mod) is None]


def is_available(name: str) -> bool:
    if name not in REGISTRY or missing_modules(name):
        return False
    return importlib.util.find_spec(REGISTRY[name].module) is not None


def available_backends() -> list[str]:
    return [n for n in REGISTRY if is_available(n)]


def resolve_name(name: str) -> str:
    """'auto' becomes the fastest installed backend; others are checked."""
    if name == "auto":
        return next(n for n in AUTO_ORDER if is_available(n))
    if name not in REGISTRY:
        raise MicrogptError(f"unknown backend {name!r} (known: {', '.join(REGISTRY)})")
    missing = missing_modules(name)
    if missing:
        raise MicrogptError(f"backend {name!r} needs {', '.join(missing)}, which is not installed: "
                            f"pip install 'microgpt[{REGISTRY[name].extra}]'")
    if not is_available(name):
        raise MicrogptError(f"backend {name!r} is not implemented in this version")
    return name


def unavailable_reason(name: str) -> str | None:
    """Why backend `name` cannot run here, or None if it can."""
    return None if is_available(name) else f"backend {name!r} is not installed or not written yet"


def skip_reason(backend: str, dtype: str, block_size: int) -> str | None:
    """Why a benchmark does not time `backend` in `dtype` at context `block_size`, or None if it does."""
    if not is_available(backend):
        return unavailable_reason(backend)
    entry = REGISTRY[backend]
    if dtype not in entry.dtypes:
        return f"backend {backend!r} has no {dtype}"
    if entry.max_timed_block is not None and block_size > entry.max_timed_block:
        return (f"backend {backend!r}: about a minute per step at T={block_size}; timed on names only "
                f"(T <= {entry.max_timed_block})")
    return None
