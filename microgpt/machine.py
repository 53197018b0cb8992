"""The machine a result was measured on: its matmul peak, its BLAS, the checkout's commit, the run's metadata.

Every benchmark records `run_metadata()` beside its figures, so that two results can be compared
(or not); `probe_peaks` measures the peak MFU is taken against. numpy and numba are imported inside
the functions that need them: the python backend and `import microgpt` must work without either.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time

from .threads import BLAS_VARS, thread_settings, usable_cores

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout (or install) this code runs from


def matmul_peak_gflops(dtype: str = "float64", n: int = 1024, repeats: int = 9) -> float:
    """GFLOP/s of one n x n x n numpy matmul (2 n^3 FLOPs): the fastest of `repeats` after a warm-up.

    The fastest, not the median: a peak is what the machine demonstrably did,
    and on a shared machine the median measures the other programs' load.
    BLAS threads follow OPENBLAS_NUM_THREADS / OMP_NUM_THREADS as set when
    numpy was first imported: `probe_peaks` sets them in a fresh process.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=out)  # warm-up: page in, start BLAS threads
    best = math.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def probe_peaks(threads=(1, None), n: int = 1024, repeats: int = 9) -> dict:
    """{dtype: {"1": GFLOP/s, "all": GFLOP/s}}: `matmul_peak_gflops` in a fresh process per BLAS thread count.

    "all" lets the BLAS use every usable core. Each probe is its own process
    because OpenBLAS reads its thread variables once, when numpy is imported.
    """
    out: dict = {}
    for t in threads:
        env = dict(os.environ)
        for var in BLAS_VARS:
            env[var] = str(t or usable_cores())
        code = (f"import json, sys; sys.path.insert(0, {ROOT!r}); from microgpt.machine import matmul_peak_gflops; "
                f"print(json.dumps({{d: matmul_peak_gflops(d, n={n}, repeats={repeats}) "
                f"for d in ('float64', 'float32')}}))")
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode:
            raise RuntimeError(f"matmul peak probe failed: {proc.stderr.strip()[-500:]}")
        for dtype, gflops in json.loads(proc.stdout).items():
            out.setdefault(dtype, {})["1" if t == 1 else "all"] = gflops
    return out


def peak_of(peaks: dict, dtype: str) -> float | None:
    """The peak MFU is taken against: the higher of a dtype's probes (1 thread, all cores).

    On a machine shared with other work the all-core probe can come out below
    one thread (the other core is busy); the higher one is what the machine
    demonstrably did.
    """
    values = [v for v in peaks.get(dtype, {}).values() if v]
    return max(values) if values else None


def numba_cache_stats() -> dict | None:
    """How this process got its compiled microgpt functions so far: {"hits": loaded from Numba's disk cache,
    "misses": compiled}, counted over every signature; None without Numba.

    A backend's `compile()` time is a compile only when something missed the cache; with every
    signature a hit it is the time to load machine code from disk, a different and far smaller cost.
    """
    numba = sys.modules.get("numba")
    if numba is None:
        return None
    from numba.core.dispatcher import Dispatcher

    seen, hits, misses = set(), 0, 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("microgpt.") or module is None:
            continue
        for value in vars(module).values():
            if isinstance(value, Dispatcher) and id(value) not in seen:
                seen.add(id(value))
                stats = value.stats
                hits += sum(stats.cache_hits.values())
                misses += sum(stats.cache_misses.values())
    return {"hits": hits, "misses": misses}


def compile_kind(stats: dict | None) -> str:
    """What a measured compile time was: "compiled" (something missed the cache), "cache load", or "none"."""
    if not stats or stats["hits"] + stats["misses"] == 0:
        return "none"
    return "compiled" if stats["misses"] else "cache load"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def blas_info() -> dict | None:
    """numpy's BLAS (name, version, configuration), without printing; None without numpy."""
    try:
        import numpy as np
    except ImportError:
        return None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # older numpy: no mode=, or another layout; a missing detail is not an error here
        return {"name": "unknown"}
    return {k: blas.get(k) for k in ("name", "version", "openblas configuration") if blas.get(k) is not None}


def git_commit(root: str = ROOT) -> dict:
    """The checkout's commit and whether the tree has changes; None outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def run_metadata() -> dict:
    """Everything a result needs to be compared with another: machine, libraries, threads, commit, date."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "versions": {p: _version(p) for p in ("microgpt", "numpy", "numba", "scipy", "llvmlite", "torch")},
        "blas": blas_info(),
        "threads": thread_settings(),
        "git": git_commit(),
    }
