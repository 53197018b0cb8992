"""Kernels: pure array functions, each a *_forward / *_backward pair, testable and timeable alone.

Importing this package points Numba's disk cache at a folder named after a hash
of every source file that holds compiled code. Numba checks only a function's
own file before it reuses a cached compilation, and our kernels inline each
other across files: after an edit to fused_layers.py, say, the cached
fused_train would go on running the old code. With the folder keyed by the
sources, any edit starts from a fresh cache. A NUMBA_CACHE_DIR set by the user
is left alone.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compiled_sources() -> list[str]:
    """Every file with @njit(cache=True) code: the kernels and the numpy backend's position functions."""
    return sorted(glob.glob(os.path.join(_PACKAGE, "kernels", "*.py"))) + \
        [os.path.join(_PACKAGE, "backends", "numpy_seq.py")]


def sources_digest(paths: list[str]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def use_source_keyed_cache() -> str | None:
    """Set Numba's cache folder to microgpt/__pycache__/numba/<digest>, removing other digests; the folder."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    try:
        import numba
    except ImportError:
        return None
    root = os.path.join(_PACKAGE, "__pycache__", "numba")
    folder = os.path.join(root, sources_digest(compiled_sources()))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None  # a read-only install: Numba's own choice (its per-user cache) applies
    if not os.access(folder, os.W_OK):
        return None
    for old in os.listdir(root):  # the compilations of earlier versions of these files
        if old != os.path.basename(folder):
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    numba.config.CACHE_DIR = folder
    return folder


CACHE_FOLDER = use_source_keyed_cache()
