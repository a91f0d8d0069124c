"""Kernels: formulas agree with GPJax's, parameters stay positive, spectral draws match ρ."""

import gpjax as gpx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.models.kernels import KINDS, Kernel, correlation, inverse_softplus, softplus

GPJAX = {
    "rbf": gpx.kernels.RBF,
    "matern12": gpx.kernels.Matern12,
    "matern32": gpx.kernels.Matern32,
    "matern52": gpx.kernels.Matern52,
}


def test_kernels_match_gpjax_with_ard_lengthscales(x64):
    rng = np.random.default_rng(0)
    cases = []
    for q in (2, 7):  # both distance paths: direct (q ≤ 4) and expanded
        x1, x2 = jnp.asarray(rng.normal(size=(9, q))), jnp.asarray(rng.normal(size=(5, q)))
        cases.append((x1, x2, jnp.asarray(rng.uniform(0.5, 2.0, q))))
    ours = jax.jit(lambda cases: [Kernel(k, ls, 1.7)(a, b) for a, b, ls in cases for k in KINDS])
    theirs = jax.jit(
        lambda cases: [
            GPJAX[k](lengthscale=ls, variance=1.7).cross_covariance(a, b)
            for a, b, ls in cases
            for k in KINDS
        ]
    )
    for got, want, kind in zip(ours(cases), theirs(cases), KINDS * 2):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=kind)


def test_gram_diagonal_is_exactly_the_variance(dtype):
    x = np.random.default_rng(0).normal(size=(30, 8)) * 50.0  # far from the origin
    k = jax.jit(lambda x: Kernel("matern12", 3.0, 2.5).gram(x))(jnp.asarray(x, dtype))
    assert k.dtype == dtype
    np.testing.assert_array_equal(np.diag(k), np.full(30, np.float32(2.5), dtype))


def test_softplus_round_trip_in_float32():
    y = jnp.asarray([1e-7, 1e-3, 0.01, 1.0, 30.0, 1e4], jnp.float32)
    np.testing.assert_allclose(softplus(inverse_softplus(y)), y, rtol=1e-6)


def test_spectral_frequencies_reproduce_the_correlation():
    deltas = jnp.asarray([[0.3, 0.0], [0.5, -0.8], [1.5, 1.0]])

    @jax.jit
    def monte_carlo(key):
        keys = jax.random.split(key, len(KINDS))
        return [
            jnp.mean(jnp.cos(Kernel(kind).spectral_frequencies(k, (200_000,), 2) @ deltas.T), 0)
            for kind, k in zip(KINDS, keys)
        ]

    for kind, mc in zip(KINDS, monte_carlo(jax.random.key(1))):
        exact = correlation(kind, jnp.sum(deltas**2, -1))
        np.testing.assert_allclose(mc, exact, atol=8e-3, err_msg=kind)  # 5 σ of the MC mean


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lengthscale=0.0), "lengthscale must be > 0"),
        (dict(lengthscale=[1.0, -2.0]), "lengthscale must be > 0"),
        (dict(variance=-1.0), "variance must be > 0"),
        (dict(kind="matern72"), "kind must be one of"),
        (dict(lengthscale=np.ones((2, 2))), "lengthscale must be a scalar or a vector"),
    ],
)
def test_kernel_rejects_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Kernel(**kwargs)
