"""The backend registry: name -> class, imported only when asked for.

`python` needs nothing; the array backends need numpy and numba, `torch`
needs torch; all are imported lazily so that `import microgpt` works without them.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import NamedTuple

from ..errors import MicrogptError


class Entry(NamedTuple):
    module: str
    cls: str
    needs: tuple[str, ...]  # third-party modules it imports
    extra: str = "numpy"  # the pip extra that installs them


REGISTRY = {
    "python": Entry("microgpt.backends.python", "PythonBackend", ()),
    "numpy": Entry("microgpt.backends.numpy_seq", "NumpyBackend", ("numpy", "numba")),
    "numpy_batched": Entry("microgpt.backends.numpy_batched", "NumpyBatchedBackend", ("numpy", "numba")),
    "fused": Entry("microgpt.backends.fused", "FusedBackend", ("numpy", "numba")),
    "torch": Entry("microgpt.backends.torch_backend", "TorchBackend", ("torch",), "torch"),
}
# what "auto" tries, fastest first
AUTO_ORDER = ("fused", "python")


def _missing(name: str) -> list[str]:
    return [mod for mod in REGISTRY[name].needs if importlib.util.find_spec(mod) is None]


def is_available(name: str) -> bool:
    if name not in REGISTRY or _missing(name):
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
    missing = _missing(name)
    if missing:
        raise MicrogptError(f"backend {name!r} needs {', '.join(missing)}, which is not installed: "
                            f"pip install 'microgpt[{REGISTRY[name].extra}]'")
    if not is_available(name):
        raise MicrogptError(f"backend {name!r} is not implemented in this version")
    return name


def get_backend_class(name: str):
    name = resolve_name(name)
    entry = REGISTRY[name]
    return getattr(importlib.import_module(entry.module), entry.cls)
