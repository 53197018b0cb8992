"""train --time-budget: the horizon comes from a measured step rate, and --steps N replays the run."""

import json
import re

import pytest

from conftest import run_cli, shared_file, tiny_config_dict
from microgpt.budget import measure_window, plan
from microgpt.config import config_from_dict
from microgpt.errors import MicrogptError
from microgpt.experiment import prepare

PLAN_LINE = re.compile(r"^time budget [\d.]+ s: .* -> (\d+) steps; replay with --steps (\d+)$", re.M)


class FakeClock:
    """Time that passes only when the test says so: the measured rate is then exact."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def tiny_experiment(tmp_path):
    cfg = config_from_dict(tiny_config_dict(), "tiny")
    return prepare(cfg, shared_file("names.txt"), quiet=True)


def test_plan_fits_the_steps_into_what_is_left_of_the_budget(tmp_path, monkeypatch):
    exp = tiny_experiment(tmp_path)
    clock = FakeClock()
    backend_cls = type(exp.make_backend())
    real = backend_cls.train_steps

    def timed_steps(self, start, count):  # every step "takes" 10 ms on the fake clock
        clock.now += 0.01 * count
        return real(self, start, count)

    monkeypatch.setattr(backend_cls, "train_steps", timed_steps)
    p = plan(exp, 10.0, clock=clock)
    assert p.steps_per_s == pytest.approx(100.0)
    assert p.measured_steps >= 1 and p.measure_s >= measure_window(10.0)
    assert p.steps == int(100.0 * (10.0 - p.measure_s))
    with pytest.raises(MicrogptError, match=r"--time-budget 0\.05: one step takes 0\.01 s.*give at least"):
        plan(exp, 0.05, clock=clock)


def test_measure_window_is_bounded():
    assert measure_window(0.1) == 0.05 and measure_window(10) == 0.5 and measure_window(600) == 2.0


def test_budget_run_saves_its_steps_and_steps_n_replays_it(tmp_path):
    shared_file("names.txt")
    config = tmp_path / "tiny.json"
    d = tiny_config_dict()
    d["training"]["time_budget"] = 2.5  # room for a loaded machine: the plan needs one step to fit
    config.write_text(json.dumps(d))
    first = run_cli(["-m", "microgpt.train", "--config", str(config), "--num-samples", "3", "--log-every", "1",
                     "-o", str(tmp_path / "a.json")])
    assert first.returncode == 0, first.stderr
    m = PLAN_LINE.search(first.stdout)
    assert m and m.group(1) == m.group(2), first.stdout
    steps = int(m.group(1))
    # on a machine that got busier after the first steps were timed, the budget ends the run early
    early = re.search(r"^time budget 2.5 s: spent after step (\d+) of the \d+ planned", first.stdout, re.M)
    done = int(early.group(1)) if early else steps
    assert re.search(rf"^trained {done} steps in ", first.stdout, re.M)
    assert re.search(r"^time budget 2.5 s: spent [\d.]+ s \(", first.stdout, re.M)
    saved = json.loads((tmp_path / "a.json").read_text())
    assert saved["config"]["training"]["num_steps"] == steps and saved["train_state"]["step"] == done
    assert saved["config"]["training"]["time_budget"] is None  # resuming must not time the run again

    replay = run_cli(["-m", "microgpt.train", "--config", str(config), "--steps", str(steps), "--num-samples", "3",
                      "--log-every", "1", "-o", str(tmp_path / "b.json"),
                      *(["--stop-after", str(done)] if early else [])])
    assert replay.returncode == 0, replay.stderr
    assert not PLAN_LINE.search(replay.stdout)  # --steps beats the config's budget
    losses = re.compile(r"^(step .*?\| loss \S+|sample .*)$" if not early else r"^(step .*?\| loss \S+)$", re.M)
    assert losses.findall(first.stdout) == losses.findall(replay.stdout)
    assert json.loads((tmp_path / "b.json").read_text())["weights"] == saved["weights"]


@pytest.mark.parametrize("args, fragment", [
    (["--time-budget", "0"], "--time-budget must be a positive number of seconds"),
    (["--time-budget", "nan"], "--time-budget must be a positive number of seconds"),
    (["--time-budget", "5", "--steps", "3"], "--time-budget and --steps both set the schedule's horizon"),
    (["--time-budget", "0.001"], "--time-budget 0.001: one step takes"),
])
def test_bad_budgets_are_one_line(tmp_path, args, fragment):
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", "python", *args, "-o", str(tmp_path / "m.json")])
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().startswith("error: ") and fragment in r.stderr, r.stderr
    assert not (tmp_path / "m.json").exists()


def test_budget_with_resume_is_refused(tmp_path):
    shared_file("names.txt")
    out = str(tmp_path / "m.json")
    first = run_cli(["-m", "microgpt.train", "--backend", "python", "--steps", "4", "--stop-after", "2",
                     "-o", out])
    assert first.returncode == 0, first.stderr
    r = run_cli(["-m", "microgpt.train", "--resume", "--time-budget", "5", "-o", out])
    assert r.returncode == 1 and "--time-budget with --resume" in r.stderr, r.stderr


def test_a_run_slower_than_its_first_steps_ends_at_the_budget_and_says_how_to_replay_it(tmp_path, monkeypatch,
                                                                                         capsys):
    import time

    from microgpt import budget, train

    shared_file("names.txt")
    real_plan = budget.plan

    def too_hopeful(exp, budget_s, *a, **k):  # as if the first steps had run 1000x faster than the rest
        p = real_plan(exp, budget_s, *a, **k)
        return budget.BudgetPlan(p.budget_s, p.steps * 1000, p.steps_per_s * 1000, p.measured_steps, p.measure_s,
                                 p.compile_s)

    monkeypatch.setattr(train, "plan_budget", too_hopeful)
    out = tmp_path / "m.json"
    t0 = time.perf_counter()
    assert train.main(["--backend", "numpy_batched", "--time-budget", "1", "--num-samples", "2", "-o", str(out)]) == 0
    wall = time.perf_counter() - t0
    printed = capsys.readouterr().out
    m = re.search(r"^time budget 1 s: spent after step (\d+) of the (\d+) planned .*"
                  r"replay with --steps (\d+) --stop-after (\d+)$", printed, re.M)
    assert m, printed
    done, planned = int(m.group(1)), int(m.group(2))
    assert 0 < done < planned and (m.group(3), m.group(4)) == (str(planned), str(done))
    assert "val loss: " in printed and "sample  2: " in printed  # the run ended: it is evaluated and sampled
    saved = json.loads(out.read_text())
    assert saved["train_state"]["step"] == done and saved["config"]["training"]["num_steps"] == planned
    assert wall < 30  # not the planned steps' many seconds (data, compile and sampling come on top of 1 s)

    replay = tmp_path / "r.json"
    assert train.main(["--backend", "numpy_batched", "--steps", str(planned), "--stop-after", str(done),
                       "-o", str(replay)]) == 0
    assert json.loads(replay.read_text())["weights"] == saved["weights"]
