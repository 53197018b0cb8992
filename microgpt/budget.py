"""A run sized by wall-clock time: `train --time-budget SECONDS` or `training.time_budget`.

The learning-rate schedule needs its horizon before the first step, so the step rate is measured
first, on a throw-away copy of the backend built from the same initial weights (compile excluded
and reported apart). The horizon is the number of steps that fit in what is left of the budget,
and the run then trains exactly that many steps from the initial weights, so `--steps N` with the
same config replays it number for number. The measurement is spent from the budget: a 60 s budget
is 60 s of measuring and training together, compile not counted. Where the steps run slower than
the first ones did (a machine that got busier), the budget still ends the run (train.train's
deadline): it stops at step M of the N planned and says `--steps N --stop-after M` replays it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

from .errors import MicrogptError, TrainingDiverged
from .experiment import Experiment

# the probe's schedule never reaches its end, so its learning rate stays near the peak
PROBE_HORIZON = 10**9


@dataclass(frozen=True)
class BudgetPlan:
    budget_s: float
    steps: int  # the schedule's horizon, and the steps the run trains
    steps_per_s: float  # measured after one warm-up step, compile excluded
    measured_steps: int
    measure_s: float  # wall time of the measurement, spent from the budget
    compile_s: float


def measure_window(budget_s: float) -> float:
    """How long to time steps for: 5 % of the budget, between 50 ms and 2 s."""
    return min(2.0, max(0.05, 0.05 * budget_s))


def plan(exp: Experiment, budget_s: float, backend_name: str | None = None,
         clock=time.perf_counter) -> BudgetPlan:
    """Time steps on a throw-away backend; the steps that fit in the rest of `budget_s`."""
    probe_cfg = exp.cfg.replace("training", num_steps=PROBE_HORIZON, time_budget=None)
    probe = dataclasses.replace(exp, cfg=probe_cfg).make_backend(backend_name)
    compile_s = probe.compile()
    window = measure_window(budget_s)
    start = clock()
    try:
        probe.train_steps(0, 1)  # the first call may still fill caches: not timed
        timed_from, done, chunk = clock(), 0, 1
        while clock() - timed_from < window:
            probe.train_steps(1 + done, chunk)
            done += chunk
            chunk = min(chunk * 2, 10_000)
    except (ArithmeticError, ValueError) as e:
        raise TrainingDiverged(f"--time-budget: the arithmetic broke down while timing the first steps ({e}); "
                               "lower training.learning_rate?") from None
    now = clock()
    rate = done / max(now - timed_from, 1e-9)
    measure_s = now - start
    steps = int(rate * (budget_s - measure_s))
    if steps < 1:
        need = measure_s + 1 / rate
        raise MicrogptError(f"--time-budget {budget_s:g}: one step takes {1 / rate:.3g} s here and timing the "
                            f"first steps took {measure_s:.3g} s; give at least {math.ceil(need * 10) / 10:g} s")
    return BudgetPlan(budget_s, steps, rate, done, measure_s, compile_s)


def describe(p: BudgetPlan) -> str:
    return (f"time budget {p.budget_s:g} s: {p.steps_per_s:,.1f} steps/s over {p.measured_steps} timed steps "
            f"({p.measure_s:.2f} s, from the budget) -> {p.steps} steps; replay with --steps {p.steps}")
