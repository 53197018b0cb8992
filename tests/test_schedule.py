"""microgpt.schedule: the learning rate at a step (SPEC §2's formulas) and which documents a step trains on."""

from __future__ import annotations

import math

import pytest

from microgpt.config import load_scenario
from microgpt.schedule import docs_per_step, learning_rate, step_doc_indices


def training(scenario="names", **changes):
    return load_scenario(scenario).replace("training", **changes).training


def test_linear_falls_from_the_rate_towards_zero_over_the_run():
    """names: lr_t = 0.01 (1 - step/1000), SPEC §2; the last step still trains (lr 1e-5), step 1000 would be 0."""
    t = training()
    assert (t.schedule, t.learning_rate, t.num_steps) == ("linear", 0.01, 1000)
    for step, want in [(0, 0.01), (1, 0.00999), (250, 0.0075), (500, 0.005), (999, 1e-5), (1000, 0.0)]:
        assert learning_rate(step, t) == pytest.approx(want, rel=1e-12, abs=1e-18), step


def test_cosine_follows_half_a_cosine_from_the_rate_to_zero():
    """alice: lr_t = 0.01 · 0.5 (1 + cos(pi step/2000)): the rate, then half of it at mid-run, 0 at the horizon."""
    t = training("alice")
    assert (t.schedule, t.learning_rate, t.num_steps) == ("cosine", 0.01, 2000)
    assert learning_rate(0, t) == 0.01
    assert learning_rate(500, t) == pytest.approx(0.005 * (1 + math.sqrt(0.5)), rel=1e-12)
    assert learning_rate(1000, t) == pytest.approx(0.005, rel=1e-12)
    assert learning_rate(2000, t) == pytest.approx(0.0, abs=1e-18)
    rates = [learning_rate(s, t) for s in range(0, 2001, 100)]
    assert all(a > b for a, b in zip(rates, rates[1:]))  # it only falls


def test_constant_is_the_rate_at_every_step():
    """schedule "constant": lr_t = lr, whatever the step and the horizon."""
    t = training(schedule="constant", learning_rate=0.003, num_steps=10)
    assert {learning_rate(s, t) for s in (0, 5, 9, 10, 10_000)} == {0.003}


def test_the_horizon_is_num_steps_so_a_longer_run_falls_more_slowly():
    """The same step of a run twice as long has lost half as much of its rate (linear)."""
    short, long = training(num_steps=100), training(num_steps=200)
    assert 0.01 - learning_rate(50, long) == pytest.approx((0.01 - learning_rate(50, short)) / 2, rel=1e-12)


def test_a_step_takes_batch_times_accumulation_documents():
    """docs_per_step = batch_size · grad_accum: the documents one optimizer step averages over."""
    assert docs_per_step(training()) == 1
    assert docs_per_step(training(batch_size=4, grad_accum=3)) == 12


def test_steps_take_the_next_documents_of_the_cycle_in_order():
    """Step s, b documents a step, takes documents s·b .. s·b+b-1 modulo the training set (SPEC §2's cycle)."""
    assert [step_doc_indices(s, 1, 5)[0] for s in range(7)] == [0, 1, 2, 3, 4, 0, 1]  # one a step: s % n
    assert step_doc_indices(3, 3, 10) == [9, 0, 1]  # a step wraps round the end
    # the steps together are the training set over and over, every document once a cycle
    seen = [i for s in range(8) for i in step_doc_indices(s, 3, 8)]
    assert seen == list(range(8)) * 3
