"""relu / relu2: forward against the scalar definition, backward against finite differences."""

import numpy as np
import pytest

from gradcheck import assert_grad_close
from microgpt.kernels.activation import activation_backward, activation_forward
from reference import activation_reference


@pytest.mark.parametrize("kind", ["relu", "relu2"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 2, 4), (1,)])
def test_forward_and_backward(kind, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kink at 0
    dy = rng.standard_normal(shape)
    np.testing.assert_array_equal(activation_forward(x, kind), activation_reference(x, kind))
    dx = activation_backward(dy, x, kind)
    assert_grad_close(dx, lambda: float(np.sum(activation_forward(x, kind) * dy)), x)


def test_gradient_at_zero_and_below_is_zero():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(activation_backward(np.ones(3), x, "relu"), [0, 0, 1])
    np.testing.assert_array_equal(activation_backward(np.ones(3), x, "relu2"), [0, 0, 6])


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="gelu"):
        activation_forward(np.ones(2), "gelu")


@pytest.mark.parametrize("kind", ["relu", "relu2"])
def test_float32_stays_float32(kind):
    x = np.linspace(-1, 1, 5, dtype=np.float32)
    assert activation_forward(x, kind).dtype == np.float32
    assert activation_backward(x, x, kind).dtype == np.float32


@pytest.mark.parametrize("kind", ["relu", "relu2"])
def test_compiled_position_pair_matches_numpy(kind):
    from microgpt.kernels.activation import CODES, activation_backward_into, activation_forward_into

    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((2, 64))
    x[:3] = [0.0, -0.0, 1e-300]
    y, dx = np.full((2, 64), np.nan)
    activation_forward_into(y, x, CODES[kind])
    activation_backward_into(dx, dy, x, CODES[kind])
    np.testing.assert_array_equal(y, activation_forward(x, kind))
    np.testing.assert_array_equal(dx, activation_backward(dy, x, kind))
