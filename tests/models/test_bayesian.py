"""Fully Bayesian GP: NUTS over the hyperparameters, predictions averaged over the draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.models import (
    GPParams,
    Kernel,
    log_marginal_likelihood,
    pad_data,
    predict,
    predict_averaged,
    sample_hyperparameters,
)


@pytest.fixture(scope="module")
def nuts_run():
    """NUTS on 12 noisy points with noise, variance and mean held fixed: the posterior of log ℓ
    is 1-D, so the draws can be checked against prior × marginal likelihood on a grid."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (12, 1))
    y = np.sin(6 * x[:, 0]) + 0.1 * rng.normal(size=12)
    data = pad_data(x, y, 16)
    fixed = {"variance": 1.0, "noise": 0.01, "mean": 0.0}
    draws = sample_hyperparameters(  # the lengthscale keeps its default LogNormal(0, 1) prior
        jax.random.key(0), data, "rbf", num_warmup=150, num_samples=300, priors=fixed
    )
    return data, draws


def test_nuts_matches_the_exact_posterior_of_a_lengthscale(nuts_run):
    data, draws = nuts_run
    assert draws.kernel.lengthscale.shape == (300, 1)
    np.testing.assert_allclose(draws.noise, 0.01, rtol=1e-5)
    np.testing.assert_allclose(draws.kernel.variance, 1.0, rtol=1e-5)
    log_ls = np.log(np.asarray(draws.kernel.lengthscale[:, 0], float))

    grid = np.linspace(-4.0, 1.5, 400)
    lml = jax.jit(jax.vmap(lambda u: log_marginal_likelihood(
        GPParams(Kernel("rbf", jnp.exp(u), 1.0), noise=0.01), data)))(jnp.asarray(grid))
    log_post = np.asarray(lml, float) - 0.5 * grid**2  # LogNormal(0, 1) prior in log ℓ
    w = np.exp(log_post - log_post.max())
    w /= w.sum()
    mean = np.sum(w * grid)
    sd = np.sqrt(np.sum(w * (grid - mean) ** 2))
    assert abs(log_ls.mean() - mean) < 0.25 * sd + 0.02, (log_ls.mean(), mean, sd)
    assert 0.7 < log_ls.std() / sd < 1.3


def test_averaged_prediction_is_the_mixture_of_the_draws(nuts_run):
    data, draws = nuts_run
    xs = jnp.linspace(-0.2, 1.2, 7)[:, None]
    avg = predict_averaged(draws, data, xs)
    members = jax.vmap(lambda p: predict(p, data, xs))(draws)
    np.testing.assert_allclose(avg.mean, members.mean.mean(0), rtol=1e-5, atol=1e-6)
    total = members.variance.mean(0) + members.mean.var(0)  # law of total variance
    np.testing.assert_allclose(avg.variance, total, rtol=1e-4, atol=1e-6)


def test_bayesian_arguments_are_checked(nuts_run):
    data, draws = nuts_run
    with pytest.raises(ValueError, match="one leading axis of draws"):
        predict_averaged(jax.tree.map(lambda a: a[0], draws), data, data.x)
    with pytest.raises(ValueError, match="priors has unknown names"):
        sample_hyperparameters(jax.random.key(0), data, priors={"scale": 1.0})
    with pytest.raises(ValueError, match=r"priors\['noise'\] must be > 0"):
        sample_hyperparameters(jax.random.key(0), data, priors={"noise": 0.0})
    with pytest.raises(ValueError, match="num_warmup must be an integer >= 1"):
        sample_hyperparameters(jax.random.key(0), data, num_warmup=0)
    with pytest.raises(ValueError, match="data must hold one campaign"):
        sample_hyperparameters(jax.random.key(0), jax.tree.map(lambda a: a[None], data))
