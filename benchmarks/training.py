"""Whole training steps (forward, backward, Adam) per backend x dtype x scenario.

- `TrainStep.time_chunk`: one train_steps() call of microgpt.bench.STEP_CHUNK (10) steps, one
  document each (batch 1, as the reference): the chunk every timing tool here uses, so a step's
  time is this / 10 in asv as in the thread sweep, pytest-benchmark and pyperf;
- `Throughput.track_tokens_per_s`, `track_mfu`: predicted positions per second over at least half
  a second of such chunks, and that as a percentage of this machine's matmul peak (microgpt.machine;
  the FLOP formula is in docs/benchmarking.md). Both come from one timed run per combination, made
  in `setup_cache`, so the MFU is that run's tokens/s times that run's FLOPs per token;
- `PeakMem.peakmem_train_short`: the process's peak memory over a short run.

Every setup compiles and runs two steps first. The schedule's horizon is set
far away so the learning rate stays near its peak however many steps asv runs.
"""

import itertools
import time

from .common import BACKENDS, DTYPES, SCENARIOS, make_backend


class _Training:
    """backend x dtype x scenario; `setup` builds, compiles and warms a backend (or skips the combination)."""

    params = (BACKENDS, DTYPES, SCENARIOS)
    param_names = ["backend", "dtype", "scenario"]
    timeout = 600

    def setup(self, backend, dtype, scenario):
        self.exp, self.be = make_backend(backend, dtype, scenario)
        self.step = 2


class TrainStep(_Training):
    def time_chunk(self, backend, dtype, scenario):
        from microgpt.bench import STEP_CHUNK

        self.be.train_steps(self.step, STEP_CHUNK)
        self.step += STEP_CHUNK


def measure_throughput(backend, dtype, scenario, peaks, min_seconds=0.5):
    """One timed run: {"tokens_per_s", "flops_per_token" (of the documents that ran), "mfu_percent"}, or
    {"skip": why}. Whole chunks of STEP_CHUNK steps, at least 3, over >= min_seconds."""
    from microgpt.bench import STEP_CHUNK, step_positions
    from microgpt.flops import flops_for_docs, mfu

    try:
        exp, be = make_backend(backend, dtype, scenario)
    except NotImplementedError as e:
        return {"skip": str(e)}
    start, steps, elapsed = 2, 0, 0.0
    t0 = time.perf_counter()
    while steps < 3 * STEP_CHUNK or elapsed < min_seconds:
        be.train_steps(start + steps, STEP_CHUNK)
        steps += STEP_CHUNK
        elapsed = time.perf_counter() - t0
    positions = step_positions(exp, start, steps)
    rate = sum(positions) / elapsed
    flops_per_token = flops_for_docs(exp.cfg.model, exp.tokenizer.vocab_size, positions) / sum(positions)
    peak = peaks.get(dtype)
    return {"tokens_per_s": rate, "flops_per_token": flops_per_token,
            "mfu_percent": 100 * mfu(rate, flops_per_token, peak) if peak else None}


class Throughput:
    params = _Training.params
    param_names = _Training.param_names
    timeout = 1800  # setup_cache times every combination

    def setup_cache(self):
        """This machine's matmul peak per dtype (microgpt.machine.probe_peaks, the higher of 1 BLAS thread and all
        cores), then one timed run per combination: both tracked numbers are read from it."""
        try:
            from microgpt.machine import peak_of, probe_peaks

            probed = probe_peaks()
            peaks = {dtype: peak_of(probed, dtype) for dtype in DTYPES}
        except (ImportError, RuntimeError):
            peaks = {}
        return {combo: measure_throughput(*combo, peaks) for combo in itertools.product(*self.params)}

    def setup(self, runs, backend, dtype, scenario):
        run = runs[(backend, dtype, scenario)]
        if "skip" in run:
            raise NotImplementedError(run["skip"])
        self.run = run

    def track_tokens_per_s(self, runs, backend, dtype, scenario):
        return self.run["tokens_per_s"]

    track_tokens_per_s.unit = "tokens/s"

    def track_mfu(self, runs, backend, dtype, scenario):
        if self.run["mfu_percent"] is None:
            raise NotImplementedError("no matmul peak (numpy missing)")
        return self.run["mfu_percent"]

    track_mfu.unit = "% of matmul peak"


class PeakMem(_Training):
    def peakmem_train_short(self, backend, dtype, scenario):
        self.be.train_steps(2, 10)
