"""log h(z) = log(φ(z) + zΦ(z)) and log Φ(z): rows A3, A4, A5 and mpmath references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from stemjax.acquisition import h, log_expected_improvement, log_h, log_ndtr

from ._reference import botorch_reference

A3 = {-2.13: -5.124068, -10.0: -55.55312, -40.0: -808.29857, -1000.0: -500014.73}


def test_a3_a4_and_mpmath_reference(dtype):
    """Rows A3 (log h at −2.13 … −1000), A4 (slope 40.0499 at −40), and mpmath over its range."""
    ref = botorch_reference()["log_h_mpmath"]
    z_ref = np.asarray(ref["z"])
    z = jnp.asarray(z_ref, dtype)
    values = log_h(z)
    slopes = jax.vmap(jax.grad(log_h))(z)
    assert values.dtype == dtype and slopes.dtype == dtype
    for z_row, expected in A3.items():  # A3, 1e-5 relative
        i = int(np.flatnonzero(z_ref == z_row)[0])
        np.testing.assert_allclose(float(values[i]), expected, rtol=1e-5)
    i40 = int(np.flatnonzero(z_ref == -40.0)[0])
    np.testing.assert_allclose(float(slopes[i40]), 40.0499, atol=1e-4)  # A4
    rtol = 1e-13 if dtype == jnp.float64 else 1e-6
    expected = np.asarray(ref["log_h"])
    # relative to max(|log h|, 1): log h crosses zero near z ≈ 0.28
    err = np.abs(np.asarray(values, float) - expected) / np.maximum(np.abs(expected), 1.0)
    assert err.max() < rtol
    np.testing.assert_allclose(np.asarray(slopes, float), ref["dlog_h_dz"], rtol=10 * rtol)


def test_a3_naive_float64_fails_where_log_h_does_not():
    z = -40.0
    with np.errstate(divide="ignore"):
        naive = np.log(norm.pdf(z) + z * norm.cdf(z))  # φ + zΦ cancels to 0 in float64
    assert not np.isfinite(naive)
    assert np.isfinite(float(log_h(z)))


@pytest.mark.parametrize("x64", [False, True])
def test_a5_logei_stress_finite_monotone_positive_gradient(x64):
    """z = ±10^k, k < 20 (float32) or k < 100 (float64): finite, monotone, gradient > 0."""
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        kmax = 100 if x64 else 20
        powers = 10.0 ** np.arange(-3, kmax, 0.5)
        z = np.concatenate([-powers[::-1], [0.0], powers])
        z = jnp.asarray(z, dtype)
        # LogEI with σ = 1, best = 0: log EI = log h(μ); its gradient in μ is Φ/h.
        value = log_expected_improvement(z, jnp.ones_like(z), jnp.zeros((), dtype))
        grad = jax.vmap(jax.grad(lambda m: log_expected_improvement(m, 1.0, 0.0)))(z)
        assert value.dtype == dtype and grad.dtype == dtype
        assert bool(jnp.all(jnp.isfinite(value))) and bool(jnp.all(jnp.isfinite(grad)))
        assert bool(jnp.all(jnp.diff(value) > 0))
        assert bool(jnp.all(grad > 0))
        # The gradient of log h in the far tail is ≈ |z|; in the far right ≈ 1/z.
        np.testing.assert_allclose(float(grad[0]), -float(z[0]), rtol=1e-5)
        np.testing.assert_allclose(float(grad[-1]), 1.0 / float(z[-1]), rtol=1e-5)


def test_a5_gradient_in_std_is_finite_for_tiny_and_huge_z(dtype):
    grad = jax.vmap(jax.grad(lambda s, m: log_expected_improvement(m, s, 0.0)), (None, 0))
    g = grad(jnp.asarray(0.5, dtype), jnp.asarray([-1e6, -30.0, 0.0, 30.0], dtype))
    assert bool(jnp.all(jnp.isfinite(g)))
    assert bool(jnp.all(g[:3] > 0))  # more spread, more chance to improve
    assert float(g[3]) >= 0  # z = 60: EI ≈ μ − best, d log EI/dσ = φ(z)/(σ h(z)) underflows


def test_log_h_gradient_equals_finite_differences(x64):
    for z in (-30.0, -4.5, -3.0, -1.0, -0.2, 2.0):
        eps = 1e-6 * max(1.0, abs(z))
        fd = (float(log_h(z + eps)) - float(log_h(z - eps))) / (2 * eps)
        np.testing.assert_allclose(float(jax.grad(log_h)(jnp.float64(z))), fd, rtol=1e-7)


def test_h_agrees_with_the_direct_formula_where_that_is_accurate(x64):
    z = np.linspace(-3.0, 6.0, 37)
    np.testing.assert_allclose(h(z), norm.pdf(z) + z * norm.cdf(z), rtol=1e-12)


def test_log_ndtr_tail_value_and_gradient(dtype):
    z = jnp.asarray([-1e6, -40.0, -5.0, 0.0, 3.0], dtype)
    values = log_ndtr(z)
    grads = jax.vmap(jax.grad(log_ndtr))(z)
    # log Φ(−40) = −804.60844 (mpmath); φ/Φ → |z| in the tail.
    np.testing.assert_allclose(float(values[1]), -804.6084420137538, rtol=1e-6)
    np.testing.assert_allclose(float(values[0]), -5e11 - 0.5 * np.log(2 * np.pi) - np.log(1e6),
                               rtol=1e-6)
    assert bool(jnp.all(jnp.isfinite(grads))) and bool(jnp.all(grads > 0))
    np.testing.assert_allclose(float(grads[0]), 1e6, rtol=1e-6)
    np.testing.assert_allclose(float(grads[1]), 40.02498, rtol=1e-5)
