"""What the asv benchmarks share: sizes, skipping what is not installed, the training setup.

A benchmark that cannot run here (a backend not written yet, numpy missing, a
dtype the backend does not support, a combination too slow to time) raises
NotImplementedError in `setup`, which asv records as skipped. `params` stay
the same everywhere, so results line up across commits and machines.
"""

import importlib.util
import os

from microgpt.backends.registry import DTYPES as REGISTERED_DTYPES, REGISTRY, skip_reason

from . import ROOT

BACKENDS = list(REGISTRY)  # every registered one, installed or not: one not installed is skipped in setup
DTYPES = list(REGISTERED_DTYPES)
SCENARIOS = ["names", "alice"]
# sequence length T, width C, heads H, vocabulary V: the two scenarios, and a size where BLAS pays
SIZES = {
    "names": {"T": 16, "C": 16, "H": 4, "V": 27},
    "alice": {"T": 128, "C": 32, "H": 4, "V": 73},
    "large": {"T": 256, "C": 256, "H": 8, "V": 256},
}
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")


def need(*modules):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise NotImplementedError(f"needs {', '.join(missing)}")


def threading_layer_first():
    """Let the kernels pick the threading layer (workqueue unless NUMBA_THREADING_LAYER says) before any
    parallel call starts Numba's pool, as the backends do."""
    from microgpt.threads import default_threading_layer

    default_threading_layer()


def make_backend(backend, dtype, scenario, **training):
    """(experiment, backend) ready to time: compiled, two steps already run. NotImplementedError if not here."""
    from microgpt.config import load_scenario
    from microgpt.bench import LONG_RUN, bench_experiment

    reason = skip_reason(backend, dtype, load_scenario(scenario).model.block_size)
    if reason:
        raise NotImplementedError(reason)
    exp = bench_experiment(scenario, dtype, extra_dirs=[SHARED_DATA], num_steps=LONG_RUN, **training)
    be = exp.make_backend(backend)
    be.compile()
    be.train_steps(0, 2)
    return exp, be
