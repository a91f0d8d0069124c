"""Shot noise (P12: Poisson variance/mean = 1), its relaxations, and detector readout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from stemjax.physics.noise import (
    detector_readout,
    poisson_counts,
    poisson_relaxed,
    poisson_straight_through,
)

N = 20_000
MEANS = (0.0, 0.7, 3.2, 48.0, 2500.0)  # zero and both branches of the sampler (λ < 10, ≥ 10)
# jax.random.poisson compiles once per shape, dtype and transformation (seconds each), so the
# tests share one shape, (len(MEANS), N).


def _big(dtype):
    return jnp.broadcast_to(jnp.asarray(MEANS, dtype)[:, None], (len(MEANS), N))


@pytest.fixture(scope="module")
def samples():
    """Exact Poisson draws at key 3 for every mean in MEANS, float32 and float64."""
    out = {}
    for x64 in (False, True):
        with jax.enable_x64(x64):
            dtype = jnp.float64 if x64 else jnp.float32
            out[x64] = (dtype, poisson_counts(jax.random.key(3), _big(dtype)))
    return out


def _dispersion_ok(x, mean):
    """Dispersion test: Σ(x − x̄)²/x̄ ~ χ²(N − 1) for Poisson data; also the sample mean."""
    x = np.asarray(x, float)
    n = x.size
    dispersion = np.sum((x - x.mean()) ** 2) / x.mean()
    p = stats.chi2.sf(dispersion, n - 1)
    assert 1e-4 < p < 1 - 1e-4, (dispersion, n - 1)
    assert abs(x.mean() - mean) < 4.5 * np.sqrt(mean / n)


@pytest.mark.parametrize("x64", [False, True])
def test_p12_poisson_variance_equals_mean(samples, x64):
    dtype, x = samples[x64]
    assert x.dtype == dtype and x.shape == (len(MEANS), N)
    x = np.asarray(x)
    assert np.all(x == np.round(x)) and np.all(x >= 0)
    assert np.all(x[0] == 0.0)  # mean 0 gives 0
    for row, mean in zip(x[1:], MEANS[1:]):
        _dispersion_ok(row, mean)


def test_poisson_distribution_chi_square_goodness_of_fit(samples):
    mean = MEANS[2]
    x = np.asarray(samples[False][1][2], int)
    edges = np.arange(0, 10)  # bins 0…8 and "≥ 9"
    observed = np.array([np.sum(x == k) for k in edges[:-1]] + [np.sum(x >= edges[-1])])
    prob = np.append(stats.poisson.pmf(edges[:-1], mean), stats.poisson.sf(edges[-2], mean))
    chi2 = np.sum((observed - N * prob) ** 2 / (N * prob))
    assert stats.chi2.sf(chi2, len(observed) - 1) > 1e-4


def test_poisson_same_key_same_counts_other_key_other_counts(samples):
    expected = np.asarray(samples[False][1])
    np.testing.assert_array_equal(poisson_counts(jax.random.key(3), _big(jnp.float32)), expected)
    other = np.asarray(poisson_counts(jax.random.key(4), _big(jnp.float32)))
    assert np.mean(other[2:] != expected[2:]) > 0.5
    # Integer means are counted in the default float dtype.
    out = jax.eval_shape(poisson_counts, jax.random.key(0), jnp.zeros((3,), jnp.int32))
    assert out.dtype == jnp.float32


def test_samplers_jit_vmap_over_keys_equals_loop(samples):
    keys = jnp.stack([jax.random.key(3), jax.random.key(4)])
    mean = _big(jnp.float32)

    def both(key, m):
        return poisson_straight_through(key, m), poisson_relaxed(key, m)

    through, relaxed = jax.jit(jax.vmap(both, in_axes=(0, None)))(keys, mean)
    np.testing.assert_array_equal(through[0], samples[False][1])
    np.testing.assert_array_equal(through[1], poisson_counts(keys[1], mean))
    np.testing.assert_array_equal(through[1], poisson_straight_through(keys[1], mean))
    # jit may fuse the relaxed sample's multiply-add, so it agrees to rounding.
    looped = np.stack([poisson_relaxed(k, mean) for k in keys])
    np.testing.assert_allclose(relaxed, looped, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sampler", [poisson_counts, poisson_relaxed, poisson_straight_through])
def test_negative_mean_rejected(sampler):
    with pytest.raises(ValueError, match=r"mean must be >= 0 and finite; got -1\.0"):
        sampler(jax.random.key(0), -1.0)


@pytest.mark.parametrize("x64", [False, True])
def test_relaxed_mean_and_variance(x64):
    with jax.enable_x64(x64):
        mean = 25.0
        x = np.asarray(poisson_relaxed(jax.random.key(7), jnp.full((N,), mean)), float)
        assert abs(x.mean() - mean) < 4.5 * np.sqrt(mean / N)
        # Sample variance of N Gaussians: sd of s² is σ² √(2/(N−1)).
        assert abs(x.var(ddof=1) - mean) < 4.5 * mean * np.sqrt(2 / (N - 1))


def test_relaxed_gradient_is_reparameterised_derivative():
    key = jax.random.key(9)
    mean = jnp.array([0.0, 0.5, 4.0, 90.0])
    x = poisson_relaxed(key, mean)
    eps = (x - mean) / jnp.sqrt(jnp.where(mean > 0, mean, 1.0))
    grad = jax.grad(lambda m: jnp.sum(poisson_relaxed(key, m)))(mean)
    expected = jnp.where(mean > 0, 1.0 + eps / (2 * jnp.sqrt(jnp.where(mean > 0, mean, 1.0))), 1.0)
    np.testing.assert_allclose(grad, expected, rtol=1e-5)
    assert np.all(np.isfinite(grad))


def test_relaxed_gradient_matches_finite_differences_float64():
    with jax.enable_x64(True):
        key = jax.random.key(4)
        mean = jnp.array([0.3, 2.0, 17.0, 400.0])
        grad = jax.grad(lambda m: jnp.sum(poisson_relaxed(key, m) ** 2))(mean)
        h = 1e-6
        fd = [
            (jnp.sum(poisson_relaxed(key, mean.at[i].add(h)) ** 2)
             - jnp.sum(poisson_relaxed(key, mean.at[i].add(-h)) ** 2)) / (2 * h)
            for i in range(4)
        ]
        np.testing.assert_allclose(grad, np.array(fd), rtol=1e-6)


@pytest.mark.parametrize("x64", [False, True])
def test_straight_through_forward_is_exact_poisson(samples, x64):
    dtype, expected = samples[x64]
    with jax.enable_x64(x64):
        x = poisson_straight_through(jax.random.key(3), _big(dtype))
    assert x.dtype == dtype
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("x64", [False, True])
def test_straight_through_gradient(samples, x64):
    dtype, counts = samples[x64]
    with jax.enable_x64(x64):
        mean = _big(dtype)
        key = jax.random.key(3)
        grad = jax.grad(lambda m: jnp.sum(poisson_straight_through(key, m)))(mean)
        # Chain rule through a downstream loss: d(x²)/dλ = 2c · ∂c/∂λ.
        g2 = jax.grad(lambda m: jnp.sum(poisson_straight_through(key, m) ** 2))(mean)
    assert grad.dtype == dtype
    grad, g2, c = np.asarray(grad), np.asarray(g2), np.asarray(counts, float)
    lam = np.broadcast_to(np.asarray(MEANS)[:, None], c.shape)
    # Reparameterised derivative 1 + ε/(2√λ) at ε = (c − λ)/√λ, i.e. (c + λ)/(2λ); 1 at λ = 0.
    expected = np.ones_like(c)
    expected[1:] = (c[1:] + lam[1:]) / (2 * lam[1:])
    rtol = 1e-12 if x64 else 1e-5
    np.testing.assert_allclose(grad, expected, rtol=rtol)
    np.testing.assert_allclose(g2, 2 * c * expected, rtol=rtol)
    # Unbiased for the mean: E[∂c/∂λ] = ∂E[c]/∂λ = 1, per-sample sd 1/(2√λ).
    for row, m in zip(grad[1:], MEANS[1:]):
        assert abs(row.mean() - 1.0) < 4.5 / (2 * np.sqrt(m) * np.sqrt(N))


def test_readout_noiseless_is_affine():
    counts = jnp.array([0.0, 1.0, 7.0, 100.0])
    out = detector_readout(jax.random.key(0), counts, gain=2.5, offset=10.0)
    np.testing.assert_allclose(out, 2.5 * counts + 10.0, rtol=1e-7)
    np.testing.assert_array_equal(detector_readout(jax.random.key(0), counts), counts)


@pytest.mark.parametrize("x64", [False, True])
def test_readout_noise_statistics(x64):
    with jax.enable_x64(x64):
        counts = jnp.full((N,), 40.0)
        out = np.asarray(detector_readout(jax.random.key(1), counts, 0.5, 3.0, 100.0), float)
        assert out.dtype == np.float64
        assert abs(out.mean() - 120.0) < 4.5 * 3.0 / np.sqrt(N)
        assert abs(out.std(ddof=1) - 3.0) < 4.5 * 3.0 / np.sqrt(2 * (N - 1))
        np.testing.assert_array_equal(
            out, detector_readout(jax.random.key(1), counts, 0.5, 3.0, 100.0)
        )


def test_readout_vmap_and_gradient():
    keys = jax.random.split(jax.random.key(3), 3)
    counts = jnp.array([1.0, 2.0])
    batched = jax.vmap(detector_readout, in_axes=(0, None, None, None))(keys, counts, 2.0, 1.0)
    looped = np.stack([detector_readout(k, counts, 2.0, 1.0) for k in keys])
    np.testing.assert_array_equal(batched, looped)
    g = jax.grad(lambda gain: jnp.sum(detector_readout(keys[0], counts, gain, 1.0)))(2.0)
    np.testing.assert_allclose(float(g), 3.0, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gain": 0.0}, r"gain must be > 0 and finite; got 0\.0"),
        ({"gain": -1.0}, r"gain must be > 0"),
        ({"read_noise": -0.1}, r"read_noise must be >= 0 and finite; got -0\.1"),
        ({"offset": float("nan")}, r"offset must be finite"),
    ],
)
def test_readout_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        detector_readout(jax.random.key(0), jnp.ones(3), **kwargs)
