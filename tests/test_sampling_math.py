"""microgpt.sampling_math, the arithmetic of one draw (SPEC section 10): temperature, penalty, top-k and the
softmax as pure functions of a list of logits, and the options' checks."""

import math
import random

import pytest

from microgpt.errors import MicrogptError
from microgpt.sampling_math import (NO_OPTIONS, SamplingOptions, argmax, check_temperature, keep_top_k, next_token,
                                    penalize, probabilities, scaled_logits, shape_logits)


def random_logits(rng, n=12):
    return [rng.gauss(0, 3) for _ in range(n)]


def test_penalty_divides_positive_and_multiplies_negative_once_per_distinct_token():
    logits = [2.0, -1.0, 3.0, 0.5]
    # token 0 occurs three times: still divided once (the seed divided by P**3)
    assert penalize(logits, [0, 0, 1, 0], 2.0) == [1.0, -2.0, 3.0, 0.5]
    assert penalize(logits, [], 2.0) == logits and penalize(logits, [0, 1], 1.0) == logits


def test_penalty_comes_after_the_temperature_and_before_top_k():
    # / 0.5 gives [4, -2, 6, 1]; the penalty on tokens 2 and 3 gives [4, -2, 3, 0.5]; top-2 keeps 4 and 3
    opts = SamplingOptions(top_k=2, repetition_penalty=2.0)
    assert shape_logits([2.0, -1.0, 3.0, 0.5], 0.5, [2, 3], opts) == [4.0, -math.inf, 3.0, -math.inf]


def test_top_k_keeps_ties_with_the_kth_and_zero_or_k_at_least_v_keeps_all():
    assert keep_top_k([1.0, 3.0, 3.0, 2.0], 2) == [-math.inf, 3.0, 3.0, -math.inf]
    assert keep_top_k([1.0, 3.0, 2.0], 2) == [-math.inf, 3.0, 2.0]
    assert keep_top_k([1.0, 3.0], 0) == keep_top_k([1.0, 3.0], 5) == [1.0, 3.0]


def test_top_k_1_equals_greedy():
    rng = random.Random(0)
    for _ in range(200):
        logits = random_logits(rng)
        assert next_token(logits, 1.0, random.Random(1), options=SamplingOptions(top_k=1)) == argmax(logits)


def test_greedy_draws_nothing_and_applies_the_penalty():
    rng = random.Random(5)
    state = rng.getstate()
    opts = SamplingOptions(repetition_penalty=4.0)
    assert next_token([1.0, 3.0, 2.0], 0, rng, recent=[1], options=opts) == 2  # 3 / 4 < 2
    assert next_token([1.0, 3.0, 2.0], 0, rng, options=opts) == 1
    assert rng.getstate() == state


def test_defaults_change_nothing():
    rng = random.Random(3)
    for _ in range(50):
        logits, t = random_logits(rng), rng.uniform(0.1, 2)
        assert probabilities(logits, t, [0, 1, 2], NO_OPTIONS) == probabilities(logits, t)
        assert SamplingOptions(repetition_penalty=1.0, repetition_window=1).active is False


def test_distribution_sums_to_one_and_zeroes_what_top_k_drops():
    rng = random.Random(4)
    for _ in range(50):
        logits = random_logits(rng)
        p = probabilities(logits, 0.7, [0, 3, 3], SamplingOptions(top_k=3, repetition_penalty=1.5))
        assert abs(sum(p) - 1) < 1e-12 and sum(x > 0 for x in p) == 3


@pytest.mark.parametrize("opts, flag", [(SamplingOptions(top_k=-1), "--top-k"),
                                        (SamplingOptions(repetition_penalty=0.0), "--repetition-penalty"),
                                        (SamplingOptions(repetition_penalty=0.9), "--repetition-penalty"),
                                        (SamplingOptions(repetition_penalty=math.nan), "--repetition-penalty"),
                                        (SamplingOptions(repetition_window=0), "--repetition-window")])
def test_bad_options_name_their_flag(opts, flag):
    with pytest.raises(MicrogptError, match=flag):
        opts.check()


def test_temperature_is_checked_and_a_scale_that_overflows_subtracts_the_largest_logit_first():
    """check_temperature refuses a negative, infinite or NaN temperature under the name it is given; a
    subnormal temperature (1 / t overflows) keeps the largest logits at 0 and sends the rest to -inf."""
    check_temperature(0.0)  # greedy is allowed
    for bad in (-0.1, math.inf, math.nan):
        with pytest.raises(MicrogptError, match="--temperature must be a finite number"):
            check_temperature(bad, "--temperature")
    assert scaled_logits([1.0, 2.0], 0.5) == [2.0, 4.0]
    assert scaled_logits([1.0, 3.0, 3.0], 5e-324) == [-math.inf, 0.0, 0.0]
    with pytest.raises(MicrogptError, match="logit for token 1 is nan"):
        scaled_logits([0.0, math.nan], 1.0)
