"""Sampling text from any backend, drawing from the one seeded RNG stream.

The probabilities are computed here, in Python, with the reference's
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

import math
import random
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SamplingOptions:
    """What reshapes the logits before the draw; the defaults change nothing."""

    top_k: int = 0  # keep the k largest logits (ties with the k-th included); 0 keeps all
    repetition_penalty: float = 1.0  # P: 1.0 is off
    repetition_window: int = 32  # W: how many of the latest tokens the penalty looks at

    @property
    def active(self) -> bool:
        return self.top_k > 0 or self.repetition_penalty != 1.0

    def check(self) -> None:
        if self.top_k < 0:
            raise MicrogptError(f"--top-k must be >= 0 (0 keeps every token), got {self.top_k}")
        if not 1.0 <= self.repetition_penalty < math.inf:
            # below 1 the "penalty" would reward repetition, and 0 would zero every logit it touches
            raise MicrogptError("--repetition-penalty must be a finite number >= 1.0 (1.0 is off; the seed used "
                                f"1.2), got {self.repetition_penalty}")
        if self.repetition_window < 1:
            raise MicrogptError(f"--repetition-window must be >= 1, got {self.repetition_window}")


NO_OPTIONS = SamplingOptions()


def scaled_logits(logits: list[float], temperature: float) -> list[float]:
    """logits / temperature as the reference computes them, for finite logits and a temperature > 0.

    Where that overflows, the largest logit is subtracted first: the same softmax, computed safely.
    """
    _check_logits(logits)
    inv_t = inverse_temperature(temperature)
    scaled = [float(x) * inv_t for x in logits]
    if not all(map(math.isfinite, scaled)):
        # only here, so that ordinary numbers keep the reference arithmetic bit for bit
        best = max(logits)
        scaled = [0.0 if x == best else (float(x) - best) * inv_t for x in logits]
    return scaled


def penalize(logits: list[float], recent, penalty: float) -> list[float]:
    """Each distinct token of `recent` made less likely: a positive logit / P, a negative one * P.

    Once per token, however often it occurs (the seed applied it once per occurrence, so a
    character seen 5 times in the window was divided by P**5).
    """
    out = list(logits)
    if penalty == 1.0:
        return out
    for t in set(recent):
        x = out[t]
        out[t] = x / penalty if x > 0 else x * penalty
    return out


def keep_top_k(logits: list[float], k: int) -> list[float]:
    """Logits below the k-th largest become -inf (so ties with the k-th all stay); k = 0 keeps all."""
    if k <= 0 or k >= len(logits):
        return list(logits)
    kth = sorted(logits, reverse=True)[k - 1]
    return [x if x >= kth else -math.inf for x in logits]


def shape_logits(logits: list[float], temperature: float, recent=(), options: SamplingOptions = NO_OPTIONS
                 ) -> list[float]:
    """SPEC section 10's order: / temperature, then the repetition penalty over `recent`, then top-k."""
    scaled = scaled_logits(logits, temperature)
    return keep_top_k(penalize(scaled, recent, options.repetition_penalty), options.top_k)


def softmax(scaled: list[float]) -> list[float]:
    """The reference's softmax of already scaled logits (-inf entries get probability 0)."""
    top = max(scaled)
    exps = [math.exp(x - top) for x in scaled]
    total = 0
    for e in exps:
        total = total + e
    return [e * total ** -1 for e in exps]


def probabilities(logits: list[float], temperature: float, recent=(), options: SamplingOptions = NO_OPTIONS
                  ) -> list[float]:
    """softmax(shaped logits) for finite logits and a temperature > 0, always a distribution."""
    return softmax(shape_logits(logits, temperature, recent, options))


def argmax(values: list[float]) -> int:
    """The first largest."""
    return max(range(len(values)), key=lambda i: values[i])


def next_token(logits: list[float], temperature: float, rng: random.Random, recent=(),
               options: SamplingOptions = NO_OPTIONS) -> int:
    """One draw; temperature 0 is greedy (the first largest logit) and draws nothing from the RNG.

    `recent` is the latest tokens of the sequence, for the repetition penalty (greedy applies it too,
    to the raw logits; top-k cannot change the largest).
    """
    check_temperature(temperature)
    if temperature == 0:
        _check_logits(logits)
        return argmax(penalize(logits, recent, options.repetition_penalty))
    return rng.choices(range(len(logits)), weights=probabilities(logits, temperature, recent, options))[0]


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
