"""Sampling text from any backend, drawing from the one seeded RNG stream.

The probabilities are computed in Python (microgpt/sampling_math.py), with the reference's
arithmetic (`logit * temperature**-1`, a max-subtracted softmax, `e * total**-1`),
and one token is drawn with `rng.choices(range(V), weights=probs)`, so every
backend that produces the same logits draws the same samples. `sample` asks the
backend for each token (`Backend.sample_next`): the base class does exactly the
above, and the fused backend compiles the same operations.

The generation options of SPEC section 10 (`SamplingOptions`: top-k, a
repetition penalty over a window of recent tokens) change the logits between
the temperature and the softmax. They are pure functions of a list of logits
(`shape_logits`), so when one is set `sample` asks every backend for
`next_logits` only and draws here: the compiled sampler of the fused backend
(which has no such options) is then not used, and all backends, whatever they
compute with, share this one path. With the options off (the defaults) nothing
here changes, and the reference samples stay as they were.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .data import Tokenizer
from .errors import MicrogptError
from .sampling_math import NO_OPTIONS, SamplingOptions, check_temperature, next_token

if TYPE_CHECKING:  # the backends import the sampling arithmetic, never this module
    from .backends.base import Backend


def _guarded(call, *args):
    try:
        return call(*args)
    except ArithmeticError as e:  # e.g. huge (finite) weights loaded from a file
        raise MicrogptError(f"the model's arithmetic overflowed ({e}): its weights are unusable") from None


def sample(backend: Backend, rng: random.Random, prompt: list[int], temperature: float,
           max_tokens: int | None = None, stop_at_bos: bool = True, options: SamplingOptions = NO_OPTIONS,
           history: list[int] | None = None) -> list[int]:
    """New token ids after [BOS] + prompt, until BOS (if stopping), max_tokens, or a full context.

    `history` is the text before the new tokens for the repetition penalty (default: the
    prompt; a --chain round passes what came before its own prompt too).
    """
    check_temperature(temperature)
    options.check()
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
    W = options.repetition_window
    recent = list(prompt if history is None else history)[-W:]
    cache = backend.new_cache()
    for pos, tok in enumerate(context[:-1]):
        _guarded(backend.next_logits, cache, tok, pos)
    token, pos = context[-1], len(context) - 1
    while len(out) < budget:
        if options.active:  # the shared path; see the module's docstring
            logits = _guarded(backend.next_logits, cache, token, pos)
            token = next_token(logits, temperature, rng, recent, options)
            recent = (recent + [token])[-W:]
        else:
            token = _guarded(backend.sample_next, cache, token, pos, temperature, rng)
        if token == bos and stop_at_bos:
            break
        out.append(token)
        pos += 1
    return out


def default_chain_context(block_size: int) -> int:
    """As the seed: half the context is kept, so each round generates the other half before the next."""
    return block_size // 2


def check_chain_context(keep: int, block_size: int) -> None:
    if not 1 <= keep <= block_size - 1:
        raise MicrogptError(f"--chain-context must be from 1 to block_size - 1 = {block_size - 1} (the context "
                            f"holds {block_size} tokens with BOS), got {keep}")


def sample_chain(backend: Backend, rng: random.Random, prompt: list[int], temperature: float,
                 max_tokens: int, stop_at_bos: bool = True, on_tokens=None, options: SamplingOptions = NO_OPTIONS,
                 keep: int | None = None) -> list[int]:
    """Longer than the context: each round after the first prompts with the last `keep` tokens.

    `keep` defaults to block_size // 2, as in the seed, so each round generates
    block_size - keep tokens from one cache (keeping block_size - 1 made it one).

    A sampled BOS ends the chain when stopping at BOS; otherwise it stays in
    the text (shown as a newline) and in the next round's context. Returns
    the new ids; with `on_tokens`, hands them over round by round instead
    and returns [], so memory stays bounded however large `max_tokens` is.
    """
    T = backend.cfg.model.block_size
    if keep is None:
        keep = default_chain_context(T)
    else:
        check_chain_context(keep, T)
    window = list(prompt)[max(0, len(prompt) - (T - 1)):]  # the first round sees as much of the prompt as fits
    recent = list(prompt)[-options.repetition_window:]  # the penalty looks past a round's own prompt
    out: list[int] = []
    done = 0
    while done < max_tokens:
        room = T - len(window)  # new tokens this round can hold
        new = sample(backend, rng, window, temperature, max_tokens=max_tokens - done, stop_at_bos=stop_at_bos,
                     options=options, history=recent)
        done += len(new)
        if on_tokens is None:
            out += new
        elif new:
            on_tokens(new)
        window = window + new
        window = window[max(0, len(window) - keep):]
        recent = (recent + new)[-options.repetition_window:]
        if len(new) < min(max_tokens - done + len(new), room):
            break  # stopped at BOS
    return out


@dataclass(frozen=True)
class FittedPrompt:
    text: str  # the prompt as the model sees it
    notes: list[str]  # one line per character replaced, for the user


def fit_prompt_case(text: str, uchars: list[str]) -> FittedPrompt:
    """A letter the vocabulary lacks becomes its other case when the vocabulary has no letter of its case.

    The names vocabulary is lowercase and the seed's README prompts it with "George" (the seed
    silently dropped unknown characters). Any other unknown character is left for
    Tokenizer.encode to report, with the vocabulary.
    """
    vocab = set(uchars)
    has_upper, has_lower = any(c.isupper() for c in vocab), any(c.islower() for c in vocab)
    out, notes = [], {}
    for ch in text:
        other = ch.swapcase()
        lacks_case = (ch.isupper() and not has_upper) or (ch.islower() and not has_lower)
        if ch not in vocab and len(other) == 1 and other in vocab and lacks_case:
            notes.setdefault(ch, f"prompt: {ch!r} is not in the vocabulary; using {other!r}")
            ch = other
        out.append(ch)
    return FittedPrompt("".join(out), list(notes.values()))


def decode(tokenizer: Tokenizer, ids: list[int]) -> str:
    """Ids to text; a BOS inside the text (when not stopping at BOS) is a newline."""
    return "".join("\n" if i == tokenizer.bos else tokenizer.uchars[i] for i in ids)
