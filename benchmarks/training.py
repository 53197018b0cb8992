"""Whole training steps (forward, backward, Adam) per backend x dtype x scenario.

- `TrainStep.time_step`: one optimizer step, one document (batch 1, as the reference);
- `Throughput.track_tokens_per_s`, `track_mfu`: predicted positions per second over
  at least half a second of steps, and that as a fraction of this machine's matmul
  peak (microgpt.perf; the FLOP formula is in docs/benchmarking.md);
- `PeakMem.peakmem_train_short`: the process's peak memory over a short run.

Every setup compiles and runs two steps first. The schedule's horizon is set
far away so the learning rate stays near its peak however many steps asv runs.
"""

import time

from .common import BACKENDS, DTYPES, SCENARIOS, make_backend


class TrainStep:
    params = (BACKENDS, DTYPES, SCENARIOS)
    param_names = ["backend", "dtype", "scenario"]
    timeout = 600

    def setup(self, backend, dtype, scenario):
        self.exp, self.be = make_backend(backend, dtype, scenario)
        self.step = 2

    def time_step(self, backend, dtype, scenario):
        self.be.train_steps(self.step, 1)
        self.step += 1


class Throughput:
    params = (BACKENDS, DTYPES, SCENARIOS)
    param_names = ["backend", "dtype", "scenario"]
    timeout = 600

    def setup_cache(self):
        """This machine's matmul peak per dtype, measured once per run (needs numpy)."""
        try:
            from microgpt.perf import matmul_peak_gflops

            return {dtype: matmul_peak_gflops(dtype) for dtype in DTYPES}
        except ImportError:
            return {}

    def setup(self, peaks, backend, dtype, scenario):
        self.exp, self.be = make_backend(backend, dtype, scenario)
        self.step = 2

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

        if dtype not in peaks:
            raise NotImplementedError("no matmul peak (numpy missing)")
        rate, positions = self._tokens_per_s()
        flops_per_token = flops_for_docs(self.exp.cfg.model, self.exp.tokenizer.vocab_size, positions) / sum(positions)
        return 100 * mfu(rate, flops_per_token, peaks[dtype])

    track_mfu.unit = "% of matmul peak"


class PeakMem:
    params = (BACKENDS, DTYPES, SCENARIOS)
    param_names = ["backend", "dtype", "scenario"]
    timeout = 600

    def setup(self, backend, dtype, scenario):
        self.exp, self.be = make_backend(backend, dtype, scenario)

    def peakmem_train_short(self, backend, dtype, scenario):
        self.be.train_steps(2, 10)
