"""The benchmark harness: the experiment every benchmark trains, and how a training step is timed.

asv, pytest-benchmark, pyperf, the thread sweep and the scripts all build their run with
`bench_experiment` and time steps in chunks of `STEP_CHUNK`, so that their figures agree.
"""

from __future__ import annotations

import os

from .config import load_scenario
from .data import CACHE_DIR, find_data_file, load_dataset
from .experiment import prepare
from .machine import ROOT
from .schedule import docs_per_step, step_doc_indices
from .synthetic_data import synthetic_dataset

# Steps per backend.train_steps() call wherever a training step is timed (benchmark_train and so the
# thread sweep, asv, pytest-benchmark, pyperf): a fused step on names (~15 us) is close to the cost of a
# call from Python, so one step per call would time mostly the call, and tools chunking differently disagree.
STEP_CHUNK = 10
# the schedule's horizon when a tool trains on for as long as it times: so far away that the learning rate
# stays near its peak however many steps it runs
LONG_RUN = 10 ** 9


def checkout_data_dirs(cfg) -> list[str]:
    """Where else a benchmark looks for the data file, after data.py's own places: ../shared/data beside
    the checkout, its data/ and its data/<scenario>/ (the download cache of a run from the checkout)."""
    return [os.path.join(os.path.dirname(ROOT), "shared", "data"), os.path.join(ROOT, CACHE_DIR),
            os.path.join(ROOT, CACHE_DIR, cfg.name)]


def bench_data_file(cfg, extra_dirs=()) -> str | None:
    """The scenario's data file in data.py's search order, then `extra_dirs`, then the checkout's folders."""
    return find_data_file(cfg, [*extra_dirs, *checkout_data_dirs(cfg)])


def bench_dataset(cfg, extra_dirs=()):
    """The scenario's real data from the first folder holding it, else the synthetic corpus. Never downloads."""
    path = bench_data_file(cfg, extra_dirs)
    if path:
        return load_dataset(cfg, path, quiet=True)
    return synthetic_dataset(cfg)


def bench_experiment(scenario: str = "names", dtype: str = "float64", extra_dirs=(), **training):
    """`prepare` for a scenario with some training keys changed (dtype, batch_size, num_steps, ...)."""
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
    T, per_step, docs = exp.cfg.model.block_size, docs_per_step(exp.cfg.training), exp.train_tokens
    return [min(T, len(docs[i]) - 1)
            for s in range(start, start + count) for i in step_doc_indices(s, per_step, len(docs))]


def percentile(values, q: float) -> float:
    """Linear-interpolated q-quantile (0..1) of `values`."""
    s = sorted(values)
    x = q * (len(s) - 1)
    lo = int(x)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (x - lo)
