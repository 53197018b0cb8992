"""Adam: the in-place vectorised step against the scalar formulas of SPEC §2."""

import numpy as np
import pytest

from microgpt.kernels.adam import adam_step
from reference import adam_reference


@pytest.mark.parametrize("shape", [(5,), (3, 4), (1, 1)])
@pytest.mark.parametrize("hyper", [(0.01, 0.85, 0.99, 1e-8), (0.003, 0.9, 0.95, 1e-6)])
def test_several_steps_match_the_scalar_reference(shape, hyper):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(shape)
    m = np.zeros(shape)
    v = np.zeros(shape)
    ref = (p.copy(), m.copy(), v.copy())
    for step in range(4):
        g = rng.standard_normal(shape)
        adam_step(p, g, m, v, *hyper, step)
        ref = adam_reference(*ref[:1], g, *ref[1:], *hyper, step)
        np.testing.assert_allclose(p, ref[0], rtol=1e-13)
        np.testing.assert_allclose(m, ref[1], rtol=1e-13)
        np.testing.assert_allclose(v, ref[2], rtol=1e-13)


def test_first_step_moves_every_parameter_by_about_lr():
    # with bias correction the first update is lr * g / (|g| + eps) = lr * sign(g)
    p = np.zeros(4)
    g = np.array([3.0, -0.5, 1e-3, -20.0])
    adam_step(p, g, np.zeros(4), np.zeros(4), 0.01, 0.9, 0.95, 1e-8, 0)
    np.testing.assert_allclose(p, -0.01 * np.sign(g), rtol=1e-4)


def test_gradient_is_not_modified_and_float32_stays_float32():
    p, g, m, v = (np.ones(3, np.float32) for _ in range(4))
    adam_step(p, g, m, v, 0.01, 0.9, 0.95, 1e-8, 2)
    assert np.all(g == 1) and p.dtype == m.dtype == v.dtype == np.float32


@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-13, 0), (np.float32, 1e-5, 1e-6)])
def test_compiled_one_pass_step_matches_the_numpy_step(dtype, rtol, atol):
    from microgpt.kernels.adam import adam_step_fused

    rng = np.random.default_rng(3)
    p = rng.standard_normal(1000).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    for step in range(5):
        g = rng.standard_normal(1000).astype(dtype)
        adam_step(p, g, m, v, 0.01, 0.85, 0.99, 1e-8, step)
        adam_step_fused(p2, g, m2, v2, 0.01, 0.85, 0.99, 1e-8, step)
    assert p2.dtype == dtype
    np.testing.assert_allclose(p2, p, rtol=rtol, atol=atol)
    np.testing.assert_allclose(m2, m, rtol=rtol, atol=atol)
    np.testing.assert_allclose(v2, v, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_weight_decay_takes_lr_times_decay_of_the_weight_before_the_update(dtype, rtol):
    from microgpt.kernels.adam import adam_step_fused

    rng = np.random.default_rng(4)
    p0 = rng.standard_normal(50).astype(dtype)
    g = rng.standard_normal(50).astype(dtype)
    plain, decayed, compiled = p0.copy(), p0.copy(), p0.copy()
    adam_step(plain, g, np.zeros_like(g), np.zeros_like(g), 0.01, 0.85, 0.99, 1e-8, 3)
    adam_step(decayed, g, np.zeros_like(g), np.zeros_like(g), 0.01, 0.85, 0.99, 1e-8, 3, 0.1)
    adam_step_fused(compiled, g, np.zeros_like(g), np.zeros_like(g), 0.01, 0.85, 0.99, 1e-8, 3, 0.1)
    np.testing.assert_allclose(decayed, plain - 0.01 * 0.1 * p0, rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(compiled, decayed, rtol=rtol, atol=1e-7)
