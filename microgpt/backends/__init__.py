"""The backends; `get_backend_class` loads one by its registered name.

What exists, what each needs and supports, and what is not run are declared in
`microgpt.backends.registry`. A backend's module is imported only here, when asked for, so that
`import microgpt` works without numpy, numba or torch.
"""

from __future__ import annotations

import importlib

from ..compile_cache import use_source_keyed_cache
from . import registry


def get_backend_class(name: str):
    entry = registry.REGISTRY[registry.resolve_name(name)]
    if "numba" in entry.needs:
        use_source_keyed_cache()  # before the module's @njit(cache=True) decorators fix their cache folder
    return getattr(importlib.import_module(entry.module), entry.cls)
