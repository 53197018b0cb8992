"""Sampling text from any backend, drawing from the one seeded RNG stream.

The probabilities are computed here, in Python, with the reference's
arithmetic (`logit * temperature**-1`, a max-subtracted softmax, `e * total**-1`),
and one token is drawn with `rng.choices(range(V), weights=probs)`, so every
backend that produces the same logits draws the same samples.
"""

from __future__ import annotations

import math
import random

from .backends.base import Backend
from .data import Tokenizer
from .errors import MicrogptError


def probabilities(logits: list[float], temperature: float) -> list[float]:
    inv_t = temperature ** -1
    scaled = [float(x) * inv_t for x in logits]
    top = max(scaled)
    exps = [math.exp(x - top) for x in scaled]
    total = 0
    for e in exps:
        total = total + e
    return [e * total ** -1 for e in exps]


def next_token(logits: list[float], temperature: float, rng: random.Random) -> int:
    """One draw; temperature 0 is greedy and draws nothing from the RNG."""
    if temperature == 0:
        return max(range(len(logits)), key=lambda i: logits[i])
    return rng.choices(range(len(logits)), weights=probabilities(logits, temperature))[0]


def sample(backend: Backend, rng: random.Random, prompt: list[int], temperature: float,
           max_tokens: int | None = None, stop_at_bos: bool = True) -> list[int]:
    """New token ids after [BOS] + prompt, until BOS (if stopping), max_tokens, or a full context."""
    if temperature < 0:
        raise MicrogptError(f"temperature must be >= 0, got {temperature}")
    T = backend.cfg.model.block_size
    bos = backend.bos
    context = [bos] + list(prompt)
    if len(context) > T:
        raise MicrogptError(f"the prompt has {len(prompt)} characters but the context holds {T - 1}; "
                            "shorten it or use --chain")
    budget = T - len(context) + 1  # positions left, each yields one new token
    if max_tokens is not None:
        budget = min(budget, max_tokens)
    cache = backend.new_cache()
    for pos, tok in enumerate(context[:-1]):
        backend.next_logits(cache, tok, pos)
    out = []
    token, pos = context[-1], len(context) - 1
    while len(out) < budget:
        token = next_token(backend.next_logits(cache, token, pos), temperature, rng)
        if token == bos and stop_at_bos:
            break
        out.append(token)
        pos += 1
    return out


def sample_chain(backend: Backend, rng: random.Random, prompt: list[int], temperature: float,
                 max_tokens: int, stop_at_bos: bool = True, on_tokens=None) -> list[int]:
    """Longer than the context: each round prompts with the last block_size-1 tokens.

    A sampled BOS ends the chain when stopping at BOS; otherwise it stays in
    the text (shown as a newline) and in the next round's context.
    """
    T = backend.cfg.model.block_size
    ids = list(prompt)
    out: list[int] = []
    while len(out) < max_tokens:
        window = ids[len(ids) - (T - 1):] if T > 1 else []
        new = sample(backend, rng, window, temperature, max_tokens=max_tokens - len(out), stop_at_bos=stop_at_bos)
        if on_tokens and new:
            on_tokens(new)
        ids += new
        out += new
        if len(new) < min(max_tokens - len(out) + len(new), T - len(window)):
            break  # stopped at BOS
    return out


def decode(tokenizer: Tokenizer, ids: list[int]) -> str:
    """Ids to text; a BOS inside the text (when not stopping at BOS) is a newline."""
    return "".join("\n" if i == tokenizer.bos else tokenizer.uchars[i] for i in ids)
