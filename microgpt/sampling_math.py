"""The arithmetic of one draw: logits -> (temperature, penalty, top-k) -> probabilities -> a token.

Written as the reference computes it (`logit * temperature**-1`, a max-subtracted softmax,
`e * total**-1`, `rng.choices(range(V), weights=probs)`), so every backend that produces
the same logits draws the same tokens. A leaf: the generation loops (microgpt/sampling.py),
the backends' own samplers and the command line's checks all ask it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .errors import MicrogptError


def check_temperature(temperature: float, what: str = "temperature") -> None:
    """`what` names the temperature in the message (the command line says --temperature)."""
    if not 0 <= temperature < math.inf:  # also NaN
        raise MicrogptError(f"{what} must be a finite number >= 0 (0 is greedy), got {temperature}")


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
