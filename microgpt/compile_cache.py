"""Where Numba keeps the compiled kernels: a folder named after a hash of every compiled source.

Numba checks only a function's own file before it reuses a cached compilation, and our kernels
inline each other across files: after an edit to fused_layers.py, say, the cached fused_train would
go on running the old code. With the folder keyed by the sources, any edit starts from a fresh cache.

Nothing happens at import. Numba fixes a function's cache folder when its @njit(cache=True)
decorator runs, i.e. when its module is imported, so `use_source_keyed_cache` is called before
any kernel module is: by `backends.get_backend_class` for the backends that compile, and by the
test and benchmark setups that import kernels directly. A NUMBA_CACHE_DIR set by the user is left alone.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil

PACKAGE = os.path.dirname(os.path.abspath(__file__))
CACHE_ROOT = os.path.join(PACKAGE, "__pycache__", "numba")  # one folder per digest below it
# CACHE_ROOT -> the folder chosen below it: once per process, for the imported kernels keep the folder
# they were given, and a source edited while the process runs must not remove it from under them
_CHOSEN: dict[str, str | None] = {}


def compiled_sources() -> list[str]:
    """Every file with code Numba compiles: the kernels, the dropout hash they compile, the numpy backend's."""
    kernels = sorted(glob.glob(os.path.join(PACKAGE, "kernels", "*.py")))
    return kernels + [os.path.join(PACKAGE, "dropout.py"), os.path.join(PACKAGE, "backends", "numpy_seq.py")]


def sources_digest(paths: list[str]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def use_source_keyed_cache() -> str | None:
    """Set Numba's cache folder to CACHE_ROOT/<digest>, removing other digests; the folder.

    None, and Numba's own choice applies, when the user set NUMBA_CACHE_DIR, Numba is not
    installed, or the folder cannot be written (a read-only install: Numba's per-user cache).
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    if CACHE_ROOT not in _CHOSEN:
        _CHOSEN[CACHE_ROOT] = _choose_folder()
    return _CHOSEN[CACHE_ROOT]


def _choose_folder() -> str | None:
    try:
        import numba
    except ImportError:
        return None
    folder = os.path.join(CACHE_ROOT, sources_digest(compiled_sources()))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    for old in os.listdir(CACHE_ROOT):  # the compilations of earlier versions of these files
        if old != os.path.basename(folder):
            shutil.rmtree(os.path.join(CACHE_ROOT, old), ignore_errors=True)
    numba.config.CACHE_DIR = folder
    return folder


# -- what is compiled already: markers beside the compilations -----------------------------------
# A backend that compiles names what its compile() builds for a run (Backend.compiled_variant) and
# leaves a marker in the cache folder once it has; the folder goes with the sources it was keyed by,
# so an edit takes the markers with it. `--backend auto` reads them: a first run that would spend
# longer compiling than training takes a backend that is ready (microgpt/auto_choice.py).

def _marker(variant: str) -> str | None:
    folder = use_source_keyed_cache() or os.environ.get("NUMBA_CACHE_DIR")
    return os.path.join(folder, f"compiled-{variant}") if folder else None


def is_warm(variant: str) -> bool | None:
    """Whether `variant` was compiled into the cache this process uses; None when that cannot be known."""
    path = _marker(variant)
    return None if path is None else os.path.exists(path)


def mark_warm(variant: str | None) -> None:
    """Record that `variant` is compiled (a backend's compile() calls this when it has finished)."""
    path = _marker(variant) if variant else None
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8"):
            pass
    except OSError:  # a cache folder we cannot write to: auto then counts the compile time each run
        pass
