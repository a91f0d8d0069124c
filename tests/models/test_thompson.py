"""Thompson sampling (checks.md A9): sample moments match the posterior, samples are functions
fixed by their key, exact and pathwise samplers agree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.models import (
    GPData,
    GPParams,
    Kernel,
    pad_data,
    pathwise_sample,
    predict,
    sample_posterior,
    thompson_samples,
)


def _setup():
    """9 observations on [0, 5]; 25 candidates on [−1.25, 6.25], every other one between the
    data a training input (indices 4, 6, …, 20)."""
    x = np.linspace(0.0, 5.0, 9)[:, None]
    y = np.sin(x[:, 0]) + 0.3 * np.cos(3 * x[:, 0])
    data = pad_data(x, y, 12)
    params = GPParams(Kernel("matern52", 0.9, 1.0), noise=0.01, mean=0.1)
    candidates = jnp.asarray(np.linspace(-1.25, 6.25, 25)[:, None], jnp.float32)
    return params, data, candidates


@pytest.mark.parametrize("method", ["cholesky", "pathwise"])
def test_a9_sample_moments_match_the_posterior(method):
    params, data, xs = _setup()
    exact = predict(params, data, xs)
    post = sample_posterior(jax.random.key(0), params, data, xs, 10_000, method=method,
                            num_features=64)
    samples = np.asarray(post.samples, float)
    assert samples.shape == (10_000, 25)
    np.testing.assert_allclose(post.mean, exact.mean)
    assert np.max(np.abs(samples.mean(0) - exact.mean)) < 0.02
    assert np.max(np.abs(samples.var(0) - exact.variance)) < 0.05
    # the same key gives the same functions, another key others
    again = thompson_samples(jax.random.key(0), params, data, xs, 10_000, method=method,
                             num_features=64)
    np.testing.assert_array_equal(again, post.samples)
    other = thompson_samples(jax.random.key(1), params, data, xs, 10_000, method=method,
                             num_features=64)
    assert not np.allclose(other, post.samples)


def test_pathwise_sample_is_a_fixed_function():
    params, data, xs = _setup()
    f = pathwise_sample(jax.random.key(3), params, data, 4, num_features=256)
    g = pathwise_sample(jax.random.key(3), params, data, 4, num_features=256)
    values = f(xs)
    np.testing.assert_array_equal(values, g(xs))
    np.testing.assert_allclose(f(xs[::-1]), values[:, ::-1], atol=1e-5)  # a function of x alone
    # at the training inputs the functions pass within a few noise deviations of the data
    assert np.max(np.abs(values[:, 4:21:2] - data.y[:9])) < 0.5


def test_exact_samples_ignore_padding():
    params, data, xs = _setup()
    dense = GPData(data.x[:9], data.y[:9])
    a = thompson_samples(jax.random.key(5), params, dense, xs, 3, method="cholesky")
    b = thompson_samples(jax.random.key(5), params, data, xs, 3, method="cholesky")
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_samples_vmap_over_campaigns():
    params, data, xs = _setup()
    stacked = jax.tree.map(lambda a: jnp.stack([a, a]), data)
    keys = jax.random.split(jax.random.key(7), 2)
    draw = jax.jit(jax.vmap(lambda k, d: thompson_samples(k, params, d, xs, 2, method="pathwise")))
    out = draw(keys, stacked)
    assert out.shape == (2, 2, 25)
    np.testing.assert_allclose(
        out[1], thompson_samples(keys[1], params, data, xs, 2, method="pathwise"), atol=1e-5
    )


def test_sampler_arguments_are_checked():
    params, data, xs = _setup()
    with pytest.raises(ValueError, match="method must be one of"):
        thompson_samples(jax.random.key(0), params, data, xs, method="rff")
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        thompson_samples(jax.random.key(0), params, data, xs, 0)
