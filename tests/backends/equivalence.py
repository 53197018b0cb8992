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
import pytest

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


# -- what every array backend's tests check the same way --------------------------------


def scenario_experiment(name: str):
    """configs/<name>.json prepared on the shared data copy (the test skips where the file is missing)."""
    from conftest import shared_file
    from microgpt.config import load_scenario
    from microgpt.experiment import prepare

    cfg = load_scenario(name)
    shared_file(cfg.data.file)
    return prepare(cfg, quiet=True)


@pytest.fixture(scope="module")
def names_exp():
    return scenario_experiment("names")


@pytest.fixture(scope="module")
def alice_exp():
    return scenario_experiment("alice")


def tiny_experiment(names_exp):
    """A 2-layer relu2 model (T 6) on the first 64 names documents: fast enough for finite differences."""
    from conftest import tiny_config_dict
    from microgpt.config import config_from_dict
    from microgpt.experiment import prepare

    cfg = config_from_dict(tiny_config_dict(n_layer=2, activation="relu2", block_size=6))
    exp = prepare(cfg, dataset=names_exp.dataset, quiet=True)
    exp.train_tokens = exp.train_tokens[:64]
    return exp


def assert_inference_matches_python(exp, candidate, n_docs: int) -> None:
    """One document's loss, the mean loss of the first n_docs, and the sampling logits, against python."""
    py = make_backend(exp, "python")
    docs = exp.train_tokens[:n_docs]
    assert candidate.doc_loss(docs[0]) == pytest.approx(py.doc_loss(docs[0]), rel=1e-12)
    assert candidate.eval_loss(docs) == pytest.approx(py.eval_loss(docs), rel=1e-12)
    cache_py, cache = py.new_cache(), candidate.new_cache()
    for pos, tok in enumerate(docs[1][:6]):
        want, got = py.next_logits(cache_py, tok, pos), candidate.next_logits(cache, tok, pos)
        assert isinstance(got, list) and isinstance(got[0], float)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def assert_state_round_trips(exp, backend) -> None:
    """Weights and Adam moments come out as plain lists by parameter, and a backend built from them resumes
    exactly where this one is."""
    from microgpt.params import param_shapes

    backend.train_steps(0, 2)
    w = backend.get_weights()
    m, v = backend.get_adam()
    shapes = param_shapes(exp.cfg.model, exp.tokenizer.vocab_size)
    for d in (w, m, v):
        assert list(d) == list(shapes)
        assert all(type(d[n]) is list and type(d[n][0][0]) is float and len(d[n]) == shapes[n][0] for n in shapes)
    again = type(backend)(backend.cfg, exp.tokenizer.vocab_size, w, exp.train_tokens)
    again.set_adam(m, v)
    assert again.train_steps(2, 3) == backend.train_steps(2, 3)


def assert_short_and_long_documents_match_python(name: str) -> None:
    """A one-position document and one longer than the context: the same loss as the python backend."""
    import random

    from conftest import tiny_config_dict
    from microgpt.config import config_from_dict
    from microgpt.params import init_weights

    cfg = config_from_dict(tiny_config_dict(block_size=4))
    V = 5
    w = init_weights(cfg.model, V, random.Random(1))
    py, cand = (get_backend_class(n)(cfg, V, w, []) for n in ("python", name))
    for tokens in ([4, 4], [4, 0, 1, 2, 3, 0, 1, 4]):
        assert cand.doc_loss(tokens) == pytest.approx(py.doc_loss(tokens), rel=1e-12)


def comparable_cli_lines(stdout: str) -> list[str]:
    """The training CLI's lines minus what legitimately differs: backend name, compile and timing figures, paths."""
    lines = []
    for line in stdout.splitlines():
        if line.startswith(("backend:", "compiled in", "trained ", "saved ")):
            continue
        if line.startswith("step "):
            line = " | ".join(line.split(" | ")[:2])  # drop steps/s and ETA
        lines.append(line)
    return lines


def train_cli_lines(tmp_path, backend: str, steps: int, *extra: str, timeout: float = 300) -> list[str]:
    """`python -m microgpt.train` on names logging every step; its comparable lines."""
    from conftest import run_cli, shared_file

    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", backend, "--steps", str(steps), "--log-every", "1",
                 "-o", str(tmp_path / f"{backend}.json"), *extra], timeout=timeout)
    assert r.returncode == 0, r.stderr
    return comparable_cli_lines(r.stdout)


def assert_samples_agree(reference, candidate, seed: int, num: int, temperature: float) -> list[list[int]]:
    """`num` samples from each backend with RNGs seeded alike: the same tokens, and the RNGs end in step.

    Both backends must hold the same weights. Returns the candidate's samples.
    """
    import random

    from microgpt.sampling import sample

    rng_ref, rng_cand = random.Random(seed), random.Random(seed)
    want = [sample(reference, rng_ref, [], temperature) for _ in range(num)]
    got = [sample(candidate, rng_cand, [], temperature) for _ in range(num)]
    assert got == want, f"samples differ: {got} != {want}"
    assert rng_cand.getstate() == rng_ref.getstate(), "the backends drew different amounts of randomness"
    return got


def flat_digest(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' bytes: equal digests mean equal numbers, bit for bit (across processes too)."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def assert_weight_decay_matches_python(names_exp, name: str, **training) -> None:
    """AdamW's decoupled decay (training.weight_decay) on the tiny model: python's losses and weights, and
    weights that differ from the same run without decay (so a backend that ignored it would fail)."""
    exp = tiny_experiment(names_exp)
    decayed = {"weight_decay": 0.5, "batch_size": 2, **training}
    ref = make_backend(exp, "python", **decayed)
    assert_train_agree(ref, make_backend(exp, name, **decayed), steps=4, rtol=1e-10, atol=1e-12)
    plain = make_backend(exp, name, **{**decayed, "weight_decay": 0.0})
    plain.train_steps(0, 4)
    moved = max(float(np.max(np.abs(weights_array(plain)[n] - w))) for n, w in weights_array(ref).items())
    assert moved > 1e-5, "weight decay changed nothing"


def assert_dropout_matches_python(names_exp, name: str, **training) -> None:
    """Residual dropout (training.dropout) on the tiny model: python's losses, weights and validation loss
    after training (which drops nothing), and losses that differ from the same run without dropout."""
    exp = tiny_experiment(names_exp)
    dropped = {"dropout": 0.3, "batch_size": 2, **training}
    ref = make_backend(exp, "python", **dropped)
    losses = assert_train_agree(ref, make_backend(exp, name, **dropped), steps=4, rtol=1e-10, atol=1e-12)
    plain = make_backend(exp, name, **{**dropped, "dropout": 0.0})
    assert all(abs(a - b) > 1e-6 for a, b in zip(plain.train_steps(0, 4), losses)), "dropout changed nothing"
    cand = make_backend(exp, name, **dropped)
    cand.train_steps(0, 4)
    docs = exp.val_tokens[:8]
    want = ref.eval_loss(docs)
    assert abs(cand.eval_loss(docs) - want) <= 1e-10 * abs(want)
