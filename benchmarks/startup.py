"""What a new process pays before the first step: imports and Numba compilation.

`timeraw_` benchmarks run their code in a fresh interpreter per sample, so
nothing is already imported or compiled. The Numba benchmarks point
NUMBA_CACHE_DIR at a folder of their own:

- `cache="none"`: an empty folder every sample, so everything compiles (a cold start);
- `cache="disk"`: a folder `setup` filled by running the same code once, so
  the sample only loads the compiled code (what a user's second run pays).
"""

import os
import shutil
import subprocess
import sys
import tempfile

from microgpt.backends.registry import REGISTRY, unavailable_reason

from . import ROOT
from .common import SHARED_DATA, need

NUMBA_BACKENDS = [name for name, entry in REGISTRY.items() if "numba" in entry.needs]


def _prelude():
    """Make the checkout importable in the child when microgpt is not installed (see __init__)."""
    return f"import sys; sys.path.insert(0, {ROOT!r})" if ROOT in sys.path else ""


def timeraw_import_microgpt():
    # the python backend's promise: the package imports with nothing third-party
    return "import microgpt; import microgpt.train; import microgpt.backends.python", _prelude()


class ImportBackend:
    params = ["python", *NUMBA_BACKENDS]
    param_names = ["backend"]

    def setup(self, backend):
        reason = unavailable_reason(backend)
        if reason:
            raise NotImplementedError(reason)

    def timeraw_import(self, backend):
        return f"from microgpt.backends import get_backend_class; get_backend_class({backend!r})", _prelude()


class _NumbaColdStart:
    param_names = ["target", "cache"]
    timeout = 900
    number = 1
    repeat = (1, 3, 120.0)

    def setup(self, target, cache):
        need("numpy", "numba")
        self.check(target, cache)
        self.cache_dir = tempfile.mkdtemp(prefix="microgpt-numba-cache-")
        if cache == "disk":
            setup_code, stmt = self.code(target)
            env = dict(os.environ, NUMBA_CACHE_DIR=self.cache_dir)
            subprocess.run([sys.executable, "-c", f"{setup_code}\n{stmt}"], env=env, check=True,
                           capture_output=True, timeout=self.timeout)

    def teardown(self, target, cache):
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def timeraw_start(self, target, cache):
        # for "none", every sample gets a folder of its own, empty
        folder = self.cache_dir if cache == "disk" else None
        where = repr(folder) if folder else f"tempfile.mkdtemp(dir={self.cache_dir!r})"
        setup_code, stmt = self.code(target)
        setup_code = f"import os, tempfile; os.environ['NUMBA_CACHE_DIR'] = {where}\n{setup_code}"
        return stmt, setup_code

    def check(self, target, cache):
        pass

    def code(self, target):
        """(setup, stmt): what runs untimed, then what is timed, in the child."""
        raise NotImplementedError


class KernelColdStart(_NumbaColdStart):
    """Import Numba and the attention kernels, compile both fused (prange) kernels, call them once."""

    params = (["attention_fused"], ["none", "disk"])

    def code(self, target):
        setup_code = _prelude()
        stmt = ("import numpy as np\n"
                "from microgpt.kernels import attention as A\n"
                "from microgpt.threads import default_threading_layer\n"
                "default_threading_layer()\n"
                "q = np.ones(16); k = np.ones((3, 16)); v = np.ones((3, 16))\n"
                "out, att = A.attention_forward_fused(q, k, v, 4)\n"
                "A.attention_backward_fused(q, q, k, v, att, 4)\n")
        return setup_code, stmt


class BackendColdStart(_NumbaColdStart):
    """Import a backend, build it, `compile()` it and train one step: what `microgpt.train` pays first.

    Every backend: those that compile nothing with Numba (python, torch) have one start, the "none"
    row. The data and initial weights are prepared untimed (pure Python, no Numba).
    """

    params = (list(REGISTRY), ["none", "disk"])

    def check(self, target, cache):
        reason = unavailable_reason(target)
        if reason:
            raise NotImplementedError(reason)
        if cache == "disk" and target not in NUMBA_BACKENDS:
            raise NotImplementedError(f"{target} compiles nothing with Numba: its start is the cache='none' row")

    def code(self, target):
        setup_code = "\n".join([
            _prelude(),
            "from microgpt.bench import bench_experiment",
            f"exp = bench_experiment('names', extra_dirs=[{SHARED_DATA!r}])",
        ])
        stmt = f"be = exp.make_backend({target!r}); be.compile(); be.train_steps(0, 1)"
        return setup_code, stmt
