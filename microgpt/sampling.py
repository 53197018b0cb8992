"""Sampling text from any backend, drawing from the one seeded RNG stream.

The probabilities are computed here, in Python, with the reference's
arithmetic (`logit * temperature**-1`, a max-subtracted softmax, `e * total**-1`),
and one token is drawn with `rng.choices(range(V), weights=probs)`, so every
backend that produces the same logits draws the same samples. `sample` asks the
backend for each token (`Backend.sample_next`): the base class does exactly the
above, and the fused backend compiles the same operations.
"""

from __future__ import annotations

import math
import random

from .backends.base import Backend
from .data import Tokenizer
from .errors import MicrogptError


def check_temperature(temperature: float) -> None:
    if not 0 <= temperature < math.inf:  # also NaN
        raise MicrogptError(f"temperature must be a finite number >= 0 (0 is greedy), got {temperature}")


def _check_logits(logits: list[float]) -> None:
    for i, x in enumerate(logits):
        if not math.isfinite(x):
            raise MicrogptError(f"the model's logit for token {i} is {x}, not a finite number: its weights are "
                                "unusable (did training diverge?)")


def inverse_temperature(temperature: float) -> float:
    """temperature ** -1 as the reference computes it (C pow()), inf where that overflows (temperature > 0)."""
    try:
        return temperature ** -1
    except OverflowError:  # a subnormal temperature
        return math.inf


def probabilities(logits: list[float], temperature: float) -> list[float]:
    """softmax(logits / temperature) for finite logits and a temperature > 0, always a distribution."""
    _check_logits(logits)
    inv_t = inverse_temperature(temperature)
    scaled = [float(x) * inv_t for x in logits]
    top = max(scaled)
    if not math.isfinite(top) or not all(map(math.isfinite, scaled)):
        # the scale overflowed: subtract the largest logit first (the same softmax, computed safely);
        # only here, so that ordinary numbers keep the reference arithmetic bit for bit
        best = max(logits)
        scaled = [0.0 if x == best else (float(x) - best) * inv_t for x in logits]
        top = 0.0
    exps = [math.exp(x - top) for x in scaled]
    total = 0
    for e in exps:
        total = total + e
    return [e * total ** -1 for e in exps]


def next_token(logits: list[float], temperature: float, rng: random.Random) -> int:
    """One draw; temperature 0 is greedy (the first largest logit) and draws nothing from the RNG."""
    check_temperature(temperature)
    if temperature == 0:
        _check_logits(logits)
        return max(range(len(logits)), key=lambda i: logits[i])
    return rng.choices(range(len(logits)), weights=probabilities(logits, temperature))[0]


def _guarded(call, *args):
    try:
        return call(*args)
    except ArithmeticError as e:  # e.g. huge (finite) weights loaded from a file
        raise MicrogptError(f"the model's arithmetic overflowed ({e}): its weights are unusable") from None


def sample(backend: Backend, rng: random.Random, prompt: list[int], temperature: float,
           max_tokens: int | None = None, stop_at_bos: bool = True) -> list[int]:
    """New token ids after [BOS] + prompt, until BOS (if stopping), max_tokens, or a full context."""
    check_temperature(temperature)
    T = backend.cfg.model.block_size
    bos = backend.bos
    context = [bos] + list(prompt)
    if len(context) > T:
        raise MicrogptError(f"the prompt has {len(prompt)} characters but the context holds {T - 1}; "
                            "shorten it or use --chain")
    budget = T - len(context) + 1  # positions left, each yields one new token
    if max_tokens is not None:
        budget = min(budget, max_tokens)
    out = []
    if budget <= 0:
        return out
    cache = backend.new_cache()
    for pos, tok in enumerate(context[:-1]):
        _guarded(backend.next_logits, cache, tok, pos)
    token, pos = context[-1], len(context) - 1
    while len(out) < budget:
        token = _guarded(backend.sample_next, cache, token, pos, temperature, rng)
        if token == bos and stop_at_bos:
            break
        out.append(token)
        pos += 1
    return out


def sample_chain(backend: Backend, rng: random.Random, prompt: list[int], temperature: float,
                 max_tokens: int, stop_at_bos: bool = True, on_tokens=None) -> list[int]:
    """Longer than the context: each round prompts with the last block_size-1 tokens.

    A sampled BOS ends the chain when stopping at BOS; otherwise it stays in
    the text (shown as a newline) and in the next round's context. Returns
    the new ids; with `on_tokens`, hands them over round by round instead
    and returns [], so memory stays bounded however large `max_tokens` is.
    """
    T = backend.cfg.model.block_size
    keep = T - 1  # the context after BOS
    window = list(prompt)[max(0, len(prompt) - keep):]
    out: list[int] = []
    done = 0
    while done < max_tokens:
        room = T - len(window)  # new tokens this round can hold
        new = sample(backend, rng, window, temperature, max_tokens=max_tokens - done, stop_at_bos=stop_at_bos)
        done += len(new)
        if on_tokens is None:
            out += new
        elif new:
            on_tokens(new)
        window = window + new
        window = window[max(0, len(window) - keep):]
        if len(new) < min(max_tokens - done + len(new), room):
            break  # stopped at BOS
    return out


def decode(tokenizer: Tokenizer, ids: list[int]) -> str:
    """Ids to text; a BOS inside the text (when not stopping at BOS) is a newline."""
    return "".join("\n" if i == tokenizer.bos else tokenizer.uchars[i] for i in ids)
