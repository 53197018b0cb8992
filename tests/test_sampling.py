"""microgpt.sampling, the generation loops: the prompt's case, and every backend drawing the same tokens with
the options of SPEC section 10 (their arithmetic is tests/test_sampling_math.py's)."""

import random

import pytest

from conftest import tiny_config_dict

from microgpt.backends import get_backend_class
from microgpt.backends.registry import REGISTRY, missing_modules
from microgpt.config import config_from_dict
from microgpt.params import init_weights
from microgpt.sampling import fit_prompt_case, sample, sample_chain
from microgpt.sampling_math import NO_OPTIONS, SamplingOptions

NAMES_VOCAB = list("abcdefghijklmnopqrstuvwxyz")


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
