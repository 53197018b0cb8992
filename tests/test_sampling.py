"""The generation options of SPEC section 10 as pure functions of a list of logits, and every backend
drawing the same tokens with them."""

import math
import random

import pytest

from conftest import tiny_config_dict

from microgpt.backends import get_backend_class
from microgpt.backends.registry import REGISTRY, missing_modules
from microgpt.config import config_from_dict
from microgpt.errors import MicrogptError
from microgpt.params import init_weights
from microgpt.sampling import fit_prompt_case, sample, sample_chain
from microgpt.sampling_math import (NO_OPTIONS, SamplingOptions, argmax, keep_top_k, next_token, penalize,
                                    probabilities, shape_logits)

NAMES_VOCAB = list("abcdefghijklmnopqrstuvwxyz")


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


def test_prompt_case_falls_back_only_when_the_vocabulary_lacks_that_case():
    fitted = fit_prompt_case("George", NAMES_VOCAB)
    assert fitted.text == "george" and fitted.notes == ["prompt: 'G' is not in the vocabulary; using 'g'"]
    assert fit_prompt_case("GG", NAMES_VOCAB).notes == ["prompt: 'G' is not in the vocabulary; using 'g'"]
    mixed = list("Aabc")  # has an upper-case letter: 'B' is a real error, left for the tokenizer to report
    assert fit_prompt_case("Bab", mixed).text == "Bab"
    assert fit_prompt_case("ab1", NAMES_VOCAB).text == "ab1"  # no other case: unchanged
    assert fit_prompt_case("abc", list("ABCDE")).text == "ABC"


# -- every backend -----------------------------------------------------------------------------

BACKENDS = list(REGISTRY)  # a backend registered later is held to the python one too


@pytest.fixture(scope="module")
def model():
    cfg = config_from_dict(tiny_config_dict(block_size=8, init_std=0.6))
    vocab = len(NAMES_VOCAB) + 1
    return cfg, vocab, init_weights(cfg.model, vocab, random.Random(7))


def build(model, name):
    if missing_modules(name):
        pytest.skip(f"{name} needs {', '.join(missing_modules(name))}")
    cfg, vocab, weights = model
    return get_backend_class(name)(cfg.replace("training", backend=name), vocab, weights, [])


CASES = {
    "top-k, penalty": dict(options=SamplingOptions(top_k=5, repetition_penalty=1.3, repetition_window=6)),
    "penalty, greedy": dict(options=SamplingOptions(repetition_penalty=2.0), temperature=0),
    "top-k 1": dict(options=SamplingOptions(top_k=1)),
    "off": dict(options=NO_OPTIONS),  # fused's compiled sampler
}


def texts(backend, options, temperature=0.9):
    rng = random.Random(11)
    prompt = [0, 4, 12]  # "aem"
    kinds = dict(
        samples=[sample(backend, rng, prompt, temperature, options=options) for _ in range(4)],
        chain=sample_chain(backend, rng, prompt, temperature, 40, stop_at_bos=False, options=options, keep=3),
        default_chain=sample_chain(backend, rng, [], temperature, 30, stop_at_bos=False, options=options))
    return kinds, rng.random()  # the last number: the backends drew the same amount of randomness


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", [b for b in BACKENDS if b != "python"])
def test_every_backend_samples_the_same_tokens(model, name, case):
    want = texts(build(model, "python"), **CASES[case])
    assert texts(build(model, name), **CASES[case]) == want
    if case == "top-k 1":  # top-k 1 is greedy, whatever the RNG
        greedy = texts(build(model, name), NO_OPTIONS, temperature=0)[0]
        assert want[0] == greedy


def test_penalty_lowers_repeats_in_a_chain(model):
    backend = build(model, "python")

    def repeats(options):
        ids = sample_chain(backend, random.Random(2), [], 1.0, 200, stop_at_bos=False, options=options)
        return sum(a == b for a, b in zip(ids, ids[1:]))
    assert repeats(SamplingOptions(repetition_penalty=3.0, repetition_window=4)) < repeats(NO_OPTIONS)
