"""Thompson sampling over candidates and Monte-Carlo EI (row A13)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm, qmc

from stemjax.acquisition import Context, ei, mc_ei, thompson, thompson_sample
from stemjax.posterior import Posterior

MEAN = jnp.array([-1.0, 0.0, 0.5, 2.0])
VAR = jnp.array([0.25, 1.0, 4.0, 0.01])


def test_same_key_same_draw_and_new_key_new_draw():
    post = Posterior(MEAN, VAR)
    acq = thompson()
    a = acq(post, Context(key=jax.random.key(7)))
    b = acq(post, Context(key=jax.random.key(7)))
    c = acq(post, Context(key=jax.random.key(8)))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(thompson(maximize=False)(post, Context(key=jax.random.key(7))),
                                  -a)


def test_marginal_draws_have_the_posterior_moments():
    many = Posterior(jnp.tile(MEAN, (10_000, 1)), jnp.tile(VAR, (10_000, 1)))
    draws = thompson_sample(jax.random.key(0), many)  # 10,000 independent draws per candidate
    np.testing.assert_allclose(draws.mean(0), MEAN, atol=0.06)  # 3 standard errors at σ = 2
    np.testing.assert_allclose(draws.var(0), VAR, rtol=0.05)


def test_joint_samples_are_used_when_present():
    samples = jnp.arange(12.0).reshape(3, 4)
    post = Posterior(MEAN, VAR, samples)
    np.testing.assert_array_equal(thompson(index=2)(post), samples[2])  # no key needed
    with pytest.raises(ValueError, match=r"index must lie in \[0, 2\]"):
        thompson(index=3)(post)


def test_missing_key_is_a_clear_error():
    with pytest.raises(ValueError, match="thompson needs context.key"):
        thompson()(Posterior(MEAN, VAR))


def test_vmap_gives_campaigns_by_candidates():
    post = Posterior(jnp.tile(MEAN, (5, 1)), jnp.tile(VAR, (5, 1)))
    keys = jax.random.split(jax.random.key(1), 5)
    scores = jax.vmap(thompson())(post, Context(key=keys))
    assert scores.shape == (5, 4)
    for b in range(5):
        np.testing.assert_array_equal(scores[b], thompson_sample(keys[b], Posterior(MEAN, VAR)))


@pytest.mark.parametrize("maximize", [True, False])
def test_a13_quasi_monte_carlo_ei_agrees_with_analytic_ei(x64, maximize):
    """2¹⁴ scrambled-Sobol normal draws: Monte-Carlo EI within 1e-3 of the closed form."""
    sobol = qmc.Sobol(d=1, scramble=True, seed=11).random_base2(14)[:, 0]
    eps = jnp.asarray(norm.ppf(sobol))
    mean = jnp.array([-1.0, -0.2, 0.0, 0.3, 1.5])
    std = jnp.array([0.5, 1.0, 2.0, 0.7, 1.2])
    samples = mean + std * eps[:, None]  # (2^14, 5): one draw per candidate per sample
    post = Posterior(mean, std**2, samples)
    ctx = Context(best=0.1)
    mc = mc_ei(maximize)(post, ctx)
    exact = ei(maximize)(post, ctx)
    np.testing.assert_allclose(mc, exact, atol=1e-3)
