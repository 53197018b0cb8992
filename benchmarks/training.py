"""Whole training steps (forward, backward, Adam) per backend x dtype x scenario.

- `TrainStep.time_step`: one optimizer step, one document (batch 1, as the reference);
- `Throughput.track_tokens_per_s`, `track_mfu`: predicted positions per second over
  at least half a second of steps, and that as a percentage of this machine's matmul
  peak (microgpt.perf; the FLOP formula is in docs/benchmarking.md);
- `PeakMem.peakmem_train_short`: the process's peak memory over a short run.

Every setup compiles and runs two steps first. The schedule's horizon is set
far away so the learning rate stays near its peak however many steps asv runs.
"""

import time

from .common import BACKENDS, DTYPES, SCENARIOS, make_backend


class _Training:
    """backend x dtype x scenario; `setup` builds, compiles and warms a backend (or skips the combination)."""

    params = (BACKENDS, DTYPES, SCENARIOS)
    param_names = ["backend", "dtype", "scenario"]
    timeout = 600

    def setup(self, *params):
        # Throughput's setup also gets setup_cache's result first: the last three are always ours
        backend, dtype, scenario = params[-3:]
        self.exp, self.be = make_backend(backend, dtype, scenario)
        self.step = 2


class TrainStep(_Training):
    def time_step(self, backend, dtype, scenario):
        self.be.train_steps(self.step, 1)
        self.step += 1


class Throughput(_Training):
    def setup_cache(self):
        """This machine's matmul peak per dtype (microgpt.perf.probe_peaks: 1 BLAS thread and all cores, each
        in a fresh process; the higher), measured once per run. Empty without numpy."""
        try:
            from microgpt.perf import peak_of, probe_peaks

            peaks = probe_peaks()
        except (ImportError, RuntimeError):
            return {}
        return {dtype: peak_of(peaks, dtype) for dtype in DTYPES}

    def _tokens_per_s(self):
        """Positions per second over >= 0.5 s of whole steps (at least 3)."""
        from microgpt.perf import step_positions

        start, steps, elapsed = self.step, 0, 0.0
        t0 = time.perf_counter()
        while steps < 3 or elapsed < 0.5:
            self.be.train_steps(self.step, 1)
            self.step += 1
            steps += 1
            elapsed = time.perf_counter() - t0
        positions = step_positions(self.exp, start, steps)
        return sum(positions) / elapsed, positions

    def track_tokens_per_s(self, peaks, backend, dtype, scenario):
        return self._tokens_per_s()[0]

    track_tokens_per_s.unit = "tokens/s"

    def track_mfu(self, peaks, backend, dtype, scenario):
        from microgpt.perf import flops_for_docs, mfu

        if not peaks.get(dtype):
            raise NotImplementedError("no matmul peak (numpy missing)")
        rate, positions = self._tokens_per_s()
        flops_per_token = flops_for_docs(self.exp.cfg.model, self.exp.tokenizer.vocab_size, positions) / sum(positions)
        return 100 * mfu(rate, flops_per_token, peaks[dtype])

    track_mfu.unit = "% of matmul peak"


class PeakMem(_Training):
    def peakmem_train_short(self, backend, dtype, scenario):
        self.be.train_steps(2, 10)
