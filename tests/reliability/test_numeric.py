"""Numbers: a diverging run stops at the step where the loss stopped being finite and saves nothing;
no probability ever reaches log(0); sampling survives any finite logits and any temperature >= 0.
"""

import json
import math
import os
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT, run_cli
from reliability_support import (FUZZ, backend_dtype_params, backend_params, read_json, small_config_dict,
                                 write_config, write_names)

from microgpt import sampling_math
from microgpt.config import config_from_dict
from microgpt.errors import MicrogptError, TrainingDiverged
from microgpt.experiment import prepare
from microgpt.train import StopSignal, train

# Large enough that the weights overflow every backend's arithmetic at step 2. A smaller one (1e6) makes only
# the python backend diverge: its -log(p) is inf once p underflows, while the array backends' log-sum-exp
# loss is the true one, huge (~1e18) but finite, and training goes on.
ABSURD_LR = 1e150
DIVERGED = {}  # backend -> the diverging run's CompletedProcess


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_names(tmp_path_factory.mktemp("numeric") / "names.txt")


def first_bad_step(data, lr, activation="relu", steps=50, backend="python"):
    """The 1-based step whose loss is first not finite, found one step at a time in-process."""
    d = small_config_dict(steps, learning_rate=lr, backend=backend)
    d["model"]["activation"] = activation
    backend = prepare(config_from_dict(d), data, quiet=True).make_backend()
    for step in range(steps):
        loss = backend.train_steps(step, 1)[0]
        if not math.isfinite(loss):
            return step + 1, loss
    return None, None


def diverge_cli(config, data, out, *extra):
    r = run_cli(["-m", "microgpt.train", "--config", config, "--data", data, "--num-samples", "0", "-o", str(out),
                 *extra])
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    last = r.stderr.splitlines()[-1]
    m = re.fullmatch(r"error: the loss became (inf|nan) at step (\d+); stopped without saving(; .* is as it was)? "
                     r"\(lower training.learning_rate\?\)", last)
    assert m, r.stderr
    return int(m.group(2)), r


@pytest.fixture(scope="module")
def good_model(data, tmp_path_factory):
    """A checkpoint of a healthy 5-step run: what a diverging run must leave alone."""
    d = tmp_path_factory.mktemp("good")
    out = d / "model.json"
    r = run_cli(["-m", "microgpt.train", "--config", write_config(d / "ok.json", small_config_dict(5)), "--data",
                 data, "--num-samples", "0", "-o", str(out)])
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


@pytest.mark.parametrize("backend", backend_params())
def test_absurd_learning_rate_names_the_step_and_keeps_the_good_checkpoint(data, good_model, tmp_path, backend):
    out = tmp_path / "model.json"
    out.write_bytes(good_model)
    absurd = write_config(tmp_path / "absurd.json", small_config_dict(50, learning_rate=ABSURD_LR))
    step, r = diverge_cli(absurd, data, out, "--backend", backend)
    DIVERGED[backend] = r
    assert step == first_bad_step(data, ABSURD_LR, backend=backend)[0]  # the step named is where it happened
    assert f"; {out} is as it was" in r.stderr
    assert out.read_bytes() == good_model
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


@pytest.mark.parametrize("backend", backend_params())
def test_divergence_is_one_line_on_stderr(data, tmp_path, backend):
    r = DIVERGED.get(backend)  # the run of the test above, when it ran
    if r is None:
        absurd = write_config(tmp_path / "absurd.json", small_config_dict(50, learning_rate=ABSURD_LR))
        r = run_cli(["-m", "microgpt.train", "--config", absurd, "--data", data, "--num-samples", "0", "--backend",
                     backend, "-o", str(tmp_path / "model.json")])
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("backend", backend_params())
def test_divergence_inside_a_chunk_of_many_steps_names_the_step(data, good_model, tmp_path, backend):
    """--quiet hands the backend many steps per call (one compiled call on the fused backend); the steps after
    the bad one still run inside that call, but the step named is the first bad one and nothing is saved."""
    out = tmp_path / "model.json"
    out.write_bytes(good_model)
    absurd = write_config(tmp_path / "absurd.json", small_config_dict(5000, learning_rate=ABSURD_LR))
    step, r = diverge_cli(absurd, data, out, "--backend", backend, "--quiet")
    assert step == first_bad_step(data, ABSURD_LR, steps=5000, backend=backend)[0]  # (the first bad step)
    assert out.read_bytes() == good_model


def test_diverging_after_resume_keeps_the_last_good_checkpoint(data, tmp_path):
    out = tmp_path / "model.json"
    config = write_config(tmp_path / "ok.json", small_config_dict(50))
    good = run_cli(["-m", "microgpt.train", "--config", config, "--data", data, "--stop-after", "5", "-o", str(out)])
    assert good.returncode == 0, good.stderr
    doc = read_json(out)
    doc["config"]["training"]["learning_rate"] = ABSURD_LR  # still a valid checkpoint, now doomed
    out.write_text(json.dumps(doc))
    before = out.read_bytes()
    step, r = diverge_cli(config, data, out, "--resume")
    assert step > 5 and out.read_bytes() == before


def test_a_fresh_run_that_diverges_writes_no_file(data, tmp_path):
    absurd = write_config(tmp_path / "absurd.json", small_config_dict(50, learning_rate=ABSURD_LR))
    _, r = diverge_cli(absurd, data, tmp_path / "model.json")
    assert "is as it was" not in r.stderr and not (tmp_path / "model.json").exists()


@pytest.mark.parametrize("activation", ["relu", "relu2"])
@pytest.mark.parametrize("lr", [10.0, 1e3, 1e30, 1e300])
def test_the_python_backend_never_takes_log_of_zero(data, monkeypatch, lr, activation):
    """However absurd the learning rate: log only ever sees positive numbers; the loss goes inf/nan instead."""
    real_log = math.log
    seen = []

    def checked_log(x, *base):
        seen.append(x)
        assert not x <= 0, f"log({x})"  # (a NaN probability, from NaN weights, is not log(0): it gives NaN)
        return real_log(x, *base)

    monkeypatch.setattr(math, "log", checked_log)
    step, loss = first_bad_step(data, lr, activation, steps=30)
    assert seen and step is not None and not math.isfinite(loss)


# -- a huge but finite loss ------------------------------------------------------------------------

FIRST_LOSS_INIT_STD_1 = 122.1621  # names, init_std 1, seed 42: the python backend's step 1 (the reference arithmetic)


@pytest.mark.parametrize("backend,dtype", backend_dtype_params())
def test_a_huge_first_loss_is_finite_on_every_backend_and_dtype(names_path, backend, dtype):
    """With init_std 1 some targets sit ~120 logits below the top: their probability underflows (below
    exp(-87) in float32, exp(-745) in float64 it is 0), but the loss is log-sum-exp minus the target logit,
    an ordinary number. float32 must give the same loss to its own precision, and a finite gradient:
    after the first Adam step (|step| <= lr per weight, exactly lr where the gradient is not tiny) every
    weight is finite and has moved."""
    d = json.load(open(os.path.join(ROOT, "configs", "names.json"), encoding="utf-8"))
    d["model"]["init_std"] = 1
    d["training"].update(backend=backend, dtype=dtype, seed=42)
    backend_ = prepare(config_from_dict(d), names_path, quiet=True).make_backend()
    before = backend_.get_weights()
    loss = backend_.train_steps(0, 1)[0]
    if dtype == "float64":
        assert round(loss, 4) == FIRST_LOSS_INIT_STD_1
    else:  # a few float32 ulps (7.6e-6 at 122) of rounding through the model
        assert loss == pytest.approx(FIRST_LOSS_INIT_STD_1, abs=5e-5 + 1e-6 * FIRST_LOSS_INIT_STD_1)
    lr = d["training"]["learning_rate"]
    moves = [abs(a - b) for name, m in backend_.get_weights().items() for ra, rb in zip(m, before[name])
             for a, b in zip(ra, rb)]
    assert all(math.isfinite(x) and x <= lr * (1 + 1e-3) for x in moves)
    assert max(moves) > lr / 2
    assert math.isfinite(backend_.train_steps(1, 1)[0])


class _Args:
    log_every, quiet = 1, False


class _Exp:
    def __init__(self, steps):
        self.cfg = config_from_dict(small_config_dict(steps))


class _Backend:
    """Returns the given losses, or raises what it is given, one per step."""

    def __init__(self, outcomes):
        self.outcomes = outcomes

    def train_steps(self, start, count):
        out = []
        for step in range(start, start + count):
            o = self.outcomes[step]
            if isinstance(o, BaseException):
                raise o
            out.append(o)
        return out

    def stop_signal(self, received):  # one process: a signal stops it at once (Backend.stop_signal)
        return received


@pytest.mark.parametrize("outcomes, message", [
    ([2.0, 1.5, float("nan"), 1.0], "the loss became nan at step 3; stopped without saving"),
    ([2.0, float("inf")], "the loss became inf at step 2; stopped without saving"),
    ([2.0, 1.5, OverflowError("(34, 'Numerical result out of range')")],
     "the arithmetic overflowed ((34, 'Numerical result out of range')) at step 3; stopped without saving"),
    ([2.0, ValueError("math domain error")], "the arithmetic overflowed (math domain error) at step 2;"),
    ([ZeroDivisionError("float division by zero")], "(float division by zero) at step 1;"),
])
def test_divergence_names_the_step_whatever_the_backend_does(outcomes, message):
    """log_every=1 runs one step per chunk, so even an exception is pinned to its step."""
    with StopSignal() as signals, pytest.raises(TrainingDiverged) as e:
        train(_Exp(len(outcomes)), _Backend(outcomes), 0, len(outcomes), _Args(), signals)
    assert message in str(e.value)


def test_an_exception_inside_a_chunk_of_steps_names_the_chunk():
    """Quiet runs take many steps per call; an exception can only be placed within the call."""
    class Quiet(_Args):
        quiet = True

    where = r"overflowed \(boom\) at (step 3|steps [23]-[34]);"
    with StopSignal() as signals, pytest.raises(TrainingDiverged, match=where):
        train(_Exp(4), _Backend([1.0, 1.0, OverflowError("boom"), 1.0]), 0, 4, Quiet(), signals)


def test_a_backend_bug_is_not_mistaken_for_divergence():
    with StopSignal() as signals, pytest.raises(ValueError, match="operands could not be broadcast"):
        train(_Exp(1), _Backend([ValueError("operands could not be broadcast")]), 0, 1, _Args(), signals)


# -- sampling at extreme logits -------------------------------------------------------------------


def reference_probabilities(logits, temperature):
    """The reference microgpt's arithmetic, which sampling must keep wherever it does not overflow."""
    scaled = [x * temperature ** -1 for x in logits]
    top = max(scaled)
    exps = [math.exp(x - top) for x in scaled]
    total = 0
    for e in exps:
        total = total + e
    return [e * total ** -1 for e in exps]


finite = st.floats(allow_nan=False, allow_infinity=False)
positive_temperature = st.floats(min_value=0.0, exclude_min=True, allow_infinity=False)


@FUZZ
@given(logits=st.lists(finite, min_size=1, max_size=30), temperature=positive_temperature)
def test_probabilities_are_a_distribution_for_any_finite_logits(logits, temperature):
    probs = sampling_math.probabilities(logits, temperature)
    assert len(probs) == len(logits)
    assert all(math.isfinite(p) and 0 <= p <= 1 for p in probs)
    assert math.fsum(probs) == pytest.approx(1.0, abs=1e-9)
    best = max(range(len(logits)), key=lambda i: logits[i])
    assert probs[best] == max(probs) > 0
    try:
        overflows = not all(math.isfinite(x * temperature ** -1) for x in logits)
    except OverflowError:  # 1/temperature itself
        overflows = True
    if not overflows:
        assert probs == reference_probabilities(logits, temperature)  # bit for bit where nothing overflows
    rng = random.Random(0)
    assert 0 <= sampling_math.next_token(logits, temperature, rng) < len(logits)


@pytest.mark.parametrize("logits, temperature, expected", [
    ([1e308, -1e308, 0.0], 1.0, [1.0, 0.0, 0.0]),
    ([1e308, 1e308, -1e308], 1e-300, [0.5, 0.5, 0.0]),  # the overflowing scale: the limit, ties split
    ([0.0, 1.0, 0.5], 5e-324, [0.0, 1.0, 0.0]),  # 1/temperature itself overflows
    ([0.0, 0.0], 1e-300, [0.5, 0.5]),  # 0 * inf must not become NaN
    ([3.0, 3.0, 3.0, 3.0], 1e308, [0.25] * 4),
    ([-1e308, -1e308], 1e-10, [0.5, 0.5]),
])
def test_probabilities_at_extremes(logits, temperature, expected):
    assert sampling_math.probabilities(logits, temperature) == expected


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_logits_are_an_error_not_a_sample(bad):
    for temperature in (0, 0.5):
        with pytest.raises(MicrogptError, match="not a finite number"):
            sampling_math.next_token([0.0, bad, 1.0], temperature, random.Random(0))


@pytest.mark.parametrize("temperature", [-1.0, -1e-300, float("nan"), float("inf")])
def test_temperature_outside_zero_to_finite_is_an_error(temperature):
    with pytest.raises(MicrogptError, match="temperature"):
        sampling_math.next_token([0.0, 1.0], temperature, random.Random(0))


def test_greedy_takes_the_first_largest_logit_and_draws_nothing():
    rng = random.Random(5)
    state = rng.getstate()
    assert sampling_math.next_token([0.5, 2.0, 2.0, -1.0], 0, rng) == 1
    assert sampling_math.next_token([0.5, 2.0, 2.0, -1.0], 0.0, rng) == 1
    assert rng.getstate() == state
