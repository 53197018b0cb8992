"""The one thread policy: how many threads each part of microgpt runs, and how that is reported.

On a 2-core machine the thread variables change timings by 100x, so every backend, kernel and
benchmark asks this module rather than reading the variables itself (docs/threads.md). numba and
torch are imported inside the functions that need them: `import microgpt` must work without either.
"""

from __future__ import annotations

import ctypes
import os
import sys

# what sets the BLAS's threads (numpy's OpenBLAS reads them once, when numpy is imported)
BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
THREAD_VARS = BLAS_VARS + ("NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY")


def usable_cores() -> int:
    """The cores this process may run on (affinity), which can be fewer than the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _count_set(var: str) -> int | None:
    """The positive whole number `var` is set to, else None."""
    value = os.environ.get(var, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def configured_threads() -> int:
    """NUMBA_NUM_THREADS when set to a positive count, else every usable core: the count a run's threads follow."""
    return _count_set("NUMBA_NUM_THREADS") or usable_cores()


def thread_env(threads: int) -> dict:
    """The variables that give a child process `threads` BLAS and Numba threads (set alike, so none is left over)."""
    return {**{var: str(threads) for var in BLAS_VARS}, "NUMBA_NUM_THREADS": str(threads)}


def thread_settings() -> dict:
    """The thread variables as set, and Numba's threads and threading layer if Numba is in use.

    Never starts Numba's thread pool: `numba.get_num_threads()` would launch
    it, fixing the threading layer before a backend had the chance to choose
    one. So until a parallel function has run, the layer reads "not started"
    and the thread count is the configured one.
    """
    env = {var: os.environ.get(var) for var in THREAD_VARS}
    out = {"env": env, "numba_num_threads": None, "numba_threading_layer": None,
           "numba_threading_layer_config": None}
    torch = sys.modules.get("torch")  # the torch backend's intra-op threads (torch.set_num_threads)
    out["torch_num_threads"] = torch.get_num_threads() if torch is not None else None
    numba = sys.modules.get("numba")
    if numba is None:
        return out
    out["numba_threading_layer_config"] = numba.config.THREADING_LAYER
    try:
        out["numba_threading_layer"] = numba.threading_layer()
    except ValueError:  # "Threading layer is not initialized": nothing parallel has run yet
        out["numba_threading_layer"] = "not started"
        out["numba_num_threads"] = numba.config.NUMBA_NUM_THREADS
    else:
        out["numba_num_threads"] = numba.get_num_threads()
    return out


def default_threading_layer() -> None:
    """Use Numba's `workqueue` layer unless the user chose one.

    Numba would pick `omp` here, whose idle workers spin-wait: with 2 threads on
    2 busy cores a tiny prange call took milliseconds instead of microseconds.
    Call before the first parallel kernel runs; later calls change nothing.
    """
    import numba

    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"


def numba_threads() -> int:
    """Numba's configured thread count (NUMBA_NUM_THREADS, every core unless set); reading it starts no pool.

    The threads that share a numpy_batched batch: with a core free, 2 threads trained an alice batch of 16
    1.8x faster than 1 (the CPU time per step hardly grows); with both cores busy with other work they were
    up to 1.6x slower (docs/batched.md): NUMBA_NUM_THREADS=1 on a shared machine.
    """
    import numba

    return numba.config.NUMBA_NUM_THREADS


def torch_threads() -> int:
    """The torch backend's intra-op threads: NUMBA_NUM_THREADS when set, else every usable core.

    Under torchrun the cores are shared out among the processes of this machine (LOCAL_WORLD_SIZE).
    """
    return _count_set("NUMBA_NUM_THREADS") or max(1, usable_cores() // (_count_set("LOCAL_WORLD_SIZE") or 1))


def one_blas_thread() -> bool:
    """Make numpy's OpenBLAS single-threaded, unless the user set a BLAS thread variable.

    Our matmuls are small ((B*T, C) x (C, 4C) at most) and OpenBLAS's threads
    spin while they wait: with 2 BLAS threads on this 2-core machine a batch-16
    step took 3.5-8x longer than with 1 (docs/batched.md). Threads pay here one
    level up, a part of the batch each (`NumpyBatchedBackend.threads`).
    Process-wide. Returns whether numpy's OpenBLAS was found and set.
    """
    if any(os.environ.get(var) for var in BLAS_VARS):
        return False
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line and line.rstrip().endswith(".so")}
    except OSError:
        return False
    done = False
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        # numpy's wheels rename the symbols (scipy_openblas_..._64_), scipy's (the BLAS of Numba's np.dot)
        # without the 64_; plain OpenBLAS builds do not
        done = _one_thread_through(lib, ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                                         "openblas_set_num_threads64_", "openblas_set_num_threads")) or done
    return done


def scipy_blas_one_thread() -> bool:
    """One thread for scipy's OpenBLAS, the BLAS of np.dot in compiled code; whether it was found and set.

    The batch path calls it from inside its own threads (NUMBA_NUM_THREADS, over
    groups), so BLAS threads of its own only spin: with OMP_NUM_THREADS=2 and
    2 Numba threads an alice batch-16 step took 848 ms instead of 17; with its
    default 2 threads and 1 Numba thread a 256/8/4/128 step 12 s instead of
    2.5 beside a busy core. Set whatever the BLAS thread variables say (they
    still govern numpy's BLAS); process-wide.
    """
    from scipy.linalg import cython_blas

    lib = ctypes.CDLL(cython_blas.__file__)  # its symbol lookups reach the OpenBLAS it links
    return _one_thread_through(lib, ("scipy_openblas_set_num_threads", "openblas_set_num_threads"))


def _one_thread_through(lib, symbols) -> bool:
    """Call the first of these OpenBLAS thread setters that `lib` has with 1; whether there was one."""
    for symbol in symbols:
        setter = getattr(lib, symbol, None)
        if setter is not None:
            setter(1)
            return True
    return False
