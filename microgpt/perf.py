"""What a benchmark number needs beside the time: FLOPs, thread settings, the machine.

- `flops_per_token` / `flops_per_doc`: forward+backward FLOPs of the model
  (the formula and why it is written so are in docs/benchmarking.md);
- `mfu`: achieved FLOP/s as a fraction of a measured peak;
- `matmul_peak_gflops`, `probe_peaks`, `peak_of`: that peak, numpy gemm probes on this machine;
- `thread_settings`, `run_metadata`: what to record with every result, since on
  a 2-core machine the thread variables change timings by 100x;
- `bench_experiment`: the documents and initial weights every benchmark trains
  on (the real data when it can be found, never a download, else a seeded
  synthetic corpus of the same shape, so that benchmarks always run).

numpy and numba are imported inside the functions that need them: the python
backend and `import microgpt` must work without either.
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

from . import envvars

# what sets the BLAS's threads (numpy's OpenBLAS reads them once, when numpy is imported)
BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
THREAD_VARS = BLAS_VARS + ("NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Steps per backend.train_steps() call wherever a training step is timed (benchmark_train and so the
# thread sweep, asv, pytest-benchmark, pyperf): a fused step on names (~15 us) is close to the cost of a
# call from Python, so one step per call would time mostly the call, and tools chunking differently disagree.
STEP_CHUNK = 10


# -- FLOPs ----------------------------------------------------------------------


def matmul_params(model_cfg, vocab_size: int) -> int:
    """Weights that multiply activations: 12 C^2 per layer and lm_head (V x C).

    wte and wpe are looked up (one row per token), not multiplied, so they
    cost no FLOPs in the forward pass and a scatter-add in the backward.
    """
    C, L = model_cfg.n_embd, model_cfg.n_layer
    return L * 12 * C * C + vocab_size * C


def attention_flops(model_cfg, n: int) -> int:
    """Forward+backward FLOPs of the attention scores and weighted sums over a causal sequence of n positions.

    The query at position t attends to t+1 keys: q.k over C channels (all
    heads together) is 2C(t+1) FLOPs, att @ v another 2C(t+1); the backward
    is twice the forward. Summed over t = 0..n-1 and the L layers:
    12 L C * n(n+1)/2 = 6 L C n (n+1).
    """
    return 6 * model_cfg.n_layer * model_cfg.n_embd * n * (n + 1)


def flops_per_doc(model_cfg, vocab_size: int, n: int) -> int:
    """Forward+backward FLOPs of one document of n predicted positions (n = min(T, len - 1))."""
    return 6 * matmul_params(model_cfg, vocab_size) * n + attention_flops(model_cfg, n)


def flops_per_token(model_cfg, vocab_size: int, seq_len: int | None = None) -> int:
    """Forward+backward FLOPs per position of a sequence of `seq_len` positions (default block_size).

    6 N_matmul (2 for the forward multiply-add, 4 for the two backward
    products dx and dW) plus the causal attention term 6 L C (seq_len + 1).
    Softmax, rmsnorm, activation and Adam are not counted (as in the usual
    MFU convention); neither are embedding lookups.
    """
    n = model_cfg.block_size if seq_len is None else int(seq_len)
    if n < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    return 6 * matmul_params(model_cfg, vocab_size) + 6 * model_cfg.n_layer * model_cfg.n_embd * (n + 1)


def flops_for_docs(model_cfg, vocab_size: int, lengths) -> int:
    """Forward+backward FLOPs of a list of documents given their positions n (exact, no average)."""
    return sum(flops_per_doc(model_cfg, vocab_size, n) for n in lengths)


def mfu(tokens_per_s: float, flops_per_token: float, peak_gflops: float) -> float:
    """Model FLOP utilisation: achieved FLOP/s over the peak, a fraction (0.01 = 1 %)."""
    if peak_gflops <= 0:
        raise ValueError(f"peak_gflops must be > 0, got {peak_gflops}")
    return tokens_per_s * flops_per_token / (peak_gflops * 1e9)


# -- the machine's peak ---------------------------------------------------------


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
        code = (f"import json, sys; sys.path.insert(0, {ROOT!r}); from microgpt.perf import matmul_peak_gflops; "
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


# -- threads --------------------------------------------------------------------


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


# -- the run --------------------------------------------------------------------


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


def usable_cores() -> int:
    """The cores this process may run on (affinity), which can be fewer than the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configured_threads() -> int:
    """NUMBA_NUM_THREADS when set to a positive count, else every usable core: the count a run's threads follow."""
    value = os.environ.get("NUMBA_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else usable_cores()


def thread_env(threads: int) -> dict:
    """The variables that give a child process `threads` BLAS and Numba threads (set alike, so none is left over)."""
    return {**{var: str(threads) for var in BLAS_VARS}, "NUMBA_NUM_THREADS": str(threads)}


def percentile(values, q: float) -> float:
    """Linear-interpolated q-quantile (0..1) of `values`."""
    s = sorted(values)
    x = q * (len(s) - 1)
    lo = int(x)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (x - lo)


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


# -- what benchmarks train on -----------------------------------------------------


def data_dirs(extra=()) -> list[str]:
    """Folders searched for a scenario's data file, in order: extra, $MICROGPT_DATA_DIR, ../shared/data, data/."""
    dirs = list(extra)
    env = envvars.folder("MICROGPT_DATA_DIR")
    if env:
        dirs.append(env)
    dirs.append(os.path.join(os.path.dirname(ROOT), "shared", "data"))
    dirs.append(os.path.join(ROOT, "data"))
    return dirs


def synthetic_text(cfg, seed: int = 1234) -> str:
    """A seeded stand-in for the scenario's data file: short lowercase names one per line, or
    word-like text (inside Gutenberg markers when the scenario strips them)."""
    import random

    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    if cfg.data.format == "lines":
        return "\n".join("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(4000))
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 8))) for _ in range(400)]
    text = " ".join(rng.choice(words) for _ in range(25_000))
    if cfg.data.gutenberg:
        text = f"*** START OF THE PROJECT GUTENBERG EBOOK SYNTHETIC ***\n{text}\n*** END OF THE PROJECT GUTENBERG EBOOK SYNTHETIC ***\n"
    return text


SYNTHETIC_SOURCE = "synthetic (microgpt.perf.synthetic_text, seed 1234)"


def find_data_file(cfg, extra_dirs=()) -> str | None:
    # the last place: where `python -m microgpt.train` downloads it (data.CACHE_DIR/<scenario>/)
    for folder in data_dirs(extra_dirs) + [os.path.join(ROOT, "data", cfg.name)]:
        path = os.path.join(folder, cfg.data.file)
        if os.path.isfile(path):
            return path
    return None


def write_synthetic_data(cfg, folder: str) -> str:
    """Write the synthetic stand-in as <folder>/<data file> (for tools that take --data); its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, cfg.data.file)
    with open(path, "w", encoding="utf-8") as f:
        f.write(synthetic_text(cfg))
    return path


def bench_dataset(cfg, extra_dirs=()):
    """The scenario's real data from the first folder holding it, else the synthetic corpus. Never downloads."""
    import hashlib

    from .data import Dataset, load_dataset, text_to_docs

    path = find_data_file(cfg, extra_dirs)
    if path:
        return load_dataset(cfg, path, quiet=True)
    text = synthetic_text(cfg)
    return Dataset(text_to_docs(text, cfg.data), SYNTHETIC_SOURCE, hashlib.sha256(text.encode()).hexdigest())


def bench_experiment(scenario: str = "names", dtype: str = "float64", extra_dirs=(), **training):
    """`prepare` for a scenario with some training keys changed (dtype, batch_size, num_steps, ...)."""
    from .config import load_scenario
    from .experiment import prepare

    cfg = load_scenario(scenario).replace("training", dtype=dtype, **training)
    return prepare(cfg, dataset=bench_dataset(cfg, extra_dirs), quiet=True)


def train_chunked(backend, start: int, count: int) -> list[float]:
    """Steps start .. start+count-1 in train_steps() calls of STEP_CHUNK steps (the last may be shorter)."""
    losses = []
    for first in range(start, start + count, STEP_CHUNK):
        losses += backend.train_steps(first, min(STEP_CHUNK, start + count - first))
    return losses


def step_positions(exp, start: int, count: int) -> list[int]:
    """The predicted positions n = min(T, len - 1) of every document steps start..start+count-1 train on."""
    from .schedule import docs_per_step, step_doc_indices

    T, per_step, docs = exp.cfg.model.block_size, docs_per_step(exp.cfg.training), exp.train_tokens
    return [min(T, len(docs[i]) - 1)
            for s in range(start, start + count) for i in step_doc_indices(s, per_step, len(docs))]
