"""softmax + cross-entropy: forward against log-sum-exp, backward against finite differences."""

import numpy as np
import pytest

from gradcheck import assert_grad_close
from microgpt.kernels.xent import softmax_xent_backward, softmax_xent_forward
from reference import softmax_xent_reference


@pytest.mark.parametrize("n,vocab", [(1, 5), (4, 27), (3, 1), (6, 2)])
def test_forward_matches_reference(n, vocab):
    rng = np.random.default_rng(0)
    logits = 3 * rng.standard_normal((n, vocab))
    targets = rng.integers(0, vocab, n)
    losses, probs = softmax_xent_forward(logits, targets)
    ref_losses, ref_probs = softmax_xent_reference(logits, targets)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("n,vocab", [(1, 5), (4, 27), (3, 1), (6, 2)])
def test_backward_matches_finite_differences(n, vocab):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((n, vocab))
    targets = rng.integers(0, vocab, n)
    dlosses = rng.standard_normal(n)
    _, probs = softmax_xent_forward(logits, targets)
    dlogits = softmax_xent_backward(dlosses, probs, targets)
    assert_grad_close(dlogits, lambda: float(softmax_xent_forward(logits, targets)[0] @ dlosses), logits)


def test_large_logits_do_not_overflow():
    losses, probs = softmax_xent_forward(np.array([[1000.0, 0.0, -1000.0]]), np.array([0]))
    assert np.all(np.isfinite(probs)) and losses[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("dtype,far", [(np.float64, 740.0), (np.float32, 95.0)])
def test_a_denormal_target_probability_still_gives_the_exact_loss(dtype, far):
    # exp(-far) is denormal in this dtype: -log(p) would keep only its few significant bits,
    # log-sum-exp - logit is exact (the sum rounds to 1)
    logits = np.array([[0.0, -far]], dtype=dtype)
    p = np.exp(logits[0, 1])
    assert 0 < p < np.finfo(dtype).tiny
    losses, _ = softmax_xent_forward(logits, np.array([1]))
    assert losses[0] == far


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_underflowed_target_probability_is_a_finite_loss_without_warning(dtype):
    # log-sum-exp - logit: the probability is 0 but the loss is its true, finite value; numpy never sees log(0)
    logits = np.array([[0.0, -1000.0], [0.0, -30.0], [np.nan, 0.0]], dtype=dtype)
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        losses, probs = softmax_xent_forward(logits, np.array([1, 1, 1]))
    assert probs[0, 1] == 0 and losses[0] == 1000
    assert losses[1] == pytest.approx(30 + np.log1p(np.exp(-30.0)), rel=float(np.finfo(dtype).eps))
    assert np.isnan(losses[2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_position_loss_is_finite_where_the_probability_underflows(dtype):
    from microgpt.kernels.xent import softmax_xent_forward_into

    logits = np.array([0.0, -1000.0, 2.0], dtype=dtype)
    probs = np.empty(3, dtype)
    loss = softmax_xent_forward_into(probs, logits, 1)
    assert probs[1] == 0
    assert loss == pytest.approx(1002 + np.log1p(np.exp(-2.0)), rel=float(np.finfo(dtype).eps))


def test_float32_stays_float32():
    logits = np.zeros((2, 3), np.float32)
    losses, probs = softmax_xent_forward(logits, np.array([0, 2]))
    assert losses.dtype == probs.dtype == np.float32
    assert softmax_xent_backward(losses, probs, np.array([0, 2])).dtype == np.float32


@pytest.mark.parametrize("vocab", [1, 2, 27])
def test_compiled_position_pair_matches_numpy(vocab):
    from microgpt.kernels.xent import softmax_xent_backward_into, softmax_xent_forward_into

    rng = np.random.default_rng(2)
    logits = 3 * rng.standard_normal(vocab)
    target = vocab - 1
    probs = np.full(vocab, np.nan)
    loss = softmax_xent_forward_into(probs, logits, target)
    ref_losses, ref_probs = softmax_xent_forward(logits[None], np.array([target]))
    assert loss == pytest.approx(ref_losses[0], rel=1e-13, abs=1e-15)
    np.testing.assert_allclose(probs, ref_probs[0], rtol=1e-13)
    dlogits = np.full(vocab, np.nan)
    softmax_xent_backward_into(dlogits, probs, target, 0.25)
    np.testing.assert_allclose(dlogits, softmax_xent_backward(np.array([0.25]), ref_probs, np.array([target]))[0],
                               rtol=1e-13, atol=1e-16)
