"""Checking one backend against another, step by step, from the same initial weights.

Shared by the backend tests: every array backend is held to the python
backend (the reference arithmetic) with the same helper.

    exp = prepare(load_scenario("names"))
    ref = make_backend(exp, "python")
    cand = make_backend(exp, "numpy", dtype="float32")
    assert_train_agree(ref, cand, steps=10, rtol=1e-4)
"""

from __future__ import annotations

import numpy as np

from microgpt.backends import get_backend_class


def make_backend(exp, name: str, dtype: str = "float64", **training):
    """A backend of `name` on exp's documents and initial weights, with training keys overridden."""
    cfg = exp.cfg.replace("training", dtype=dtype, **training)
    return get_backend_class(name)(cfg, exp.tokenizer.vocab_size, exp.weights, exp.train_tokens)


def weights_array(backend) -> dict[str, np.ndarray]:
    return {name: np.array(rows, dtype=np.float64) for name, rows in backend.get_weights().items()}


def assert_weights_close(expected: dict, actual: dict, rtol: float, atol: float = 0.0) -> None:
    assert list(expected) == list(actual), "parameter names or order differ"
    for name in expected:
        np.testing.assert_allclose(np.asarray(actual[name], dtype=np.float64),
                                   np.asarray(expected[name], dtype=np.float64),
                                   rtol=rtol, atol=atol, err_msg=f"parameter {name}")


def assert_train_agree(reference, candidate, steps: int, rtol: float, atol: float = 0.0,
                       ref_losses: list[float] | None = None, ref_weights: dict | None = None) -> list[float]:
    """Train both for `steps` steps from step 0: every loss, then every parameter, agree.

    `ref_losses`/`ref_weights` skip re-running a slow reference already trained this far.
    Returns the candidate's losses.
    """
    if ref_losses is None:
        ref_losses = reference.train_steps(0, steps)
        ref_weights = weights_array(reference)
    losses = candidate.train_steps(0, steps)
    assert len(losses) == len(ref_losses) == steps
    for i, (want, got) in enumerate(zip(ref_losses, losses)):
        assert abs(got - want) <= rtol * abs(want) + atol, f"step {i}: loss {got!r} != {want!r} (rtol {rtol})"
    assert_weights_close(ref_weights, weights_array(candidate), rtol, atol)
    return losses
