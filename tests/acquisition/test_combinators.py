"""Composition: chain, weighted sums, log products, custom functions, log-space handling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.acquisition import (
    AcquisitionFunction,
    Context,
    ScoreTransform,
    acquisition,
    chain,
    cost_weighting,
    ei,
    log_ei,
    log_pi,
    log_product,
    max_uncertainty,
    pi,
    posterior_mean,
    ucb,
    weighted_sum,
)
from stemjax.posterior import Posterior

POST = Posterior(jnp.array([-1.0, 0.0, 0.4, 2.0]), jnp.array([0.5, 1.0, 0.1, 2.0]))
CTX = Context(best=0.2, costs=jnp.array([1.0, 2.0, 0.5, 4.0]))


def test_a_plain_function_goes_through_the_same_path():
    def spread_near_target(posterior, context):
        return posterior.std * jnp.exp(-0.5 * (posterior.mean - 0.5) ** 2)

    acq = acquisition(spread_near_target)
    assert isinstance(acq, AcquisitionFunction) and not acq.log_space
    expected = POST.std * jnp.exp(-0.5 * (POST.mean - 0.5) ** 2)
    np.testing.assert_allclose(acq(POST, CTX), expected, rtol=1e-6)
    # chain accepts the bare function as well, and divides by the costs.
    np.testing.assert_allclose(chain(spread_near_target, cost_weighting())(POST, CTX),
                               expected / CTX.costs, rtol=1e-6)
    # ... and the combinators vmap over campaigns like built-ins.
    batch = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), (POST, CTX))
    scores = jax.vmap(chain(spread_near_target, cost_weighting()))(*batch)
    assert scores.shape == (2, 4)


def test_chain_applies_transforms_in_order_and_keeps_log_space():
    double = lambda s, p, c: 2.0 * s  # noqa: E731  (a plain transform)
    a = chain(ei(), double, cost_weighting())(POST, CTX)
    np.testing.assert_allclose(a, 2.0 * ei()(POST, CTX) / CTX.costs, rtol=1e-6)
    logged = chain(log_ei(), cost_weighting(alpha=0.5))
    assert logged.log_space
    np.testing.assert_allclose(logged(POST, CTX), log_ei()(POST, CTX) - 0.5 * jnp.log(CTX.costs),
                               rtol=1e-6)


def test_weighted_sum_and_its_kind_check():
    s = weighted_sum(posterior_mean(), max_uncertainty(), weights=[2.0, 3.0])
    np.testing.assert_allclose(s(POST), 2 * POST.mean + 3 * POST.std, rtol=1e-6)
    np.testing.assert_allclose(ucb(9.0)(POST), POST.mean + 3 * POST.std, rtol=1e-6)
    both_log = weighted_sum(log_ei(), log_pi())
    assert both_log.log_space
    with pytest.raises(ValueError, match="one kind"):
        weighted_sum(ei(), log_ei())
    with pytest.raises(ValueError, match="one weight per acquisition"):
        weighted_sum(ei(), pi(), weights=[1.0])


def test_log_product_multiplies_in_log_space():
    prod = log_product(ei(), log_pi(), weights=[1.0, 2.0])
    assert prod.log_space
    expected = jnp.log(ei()(POST, CTX)) + 2.0 * log_pi()(POST, CTX)
    np.testing.assert_allclose(prod(POST, CTX), expected, rtol=1e-5)
    # EI × PI through log_product equals the log of the product.
    np.testing.assert_allclose(log_product(ei(), pi())(POST, CTX),
                               jnp.log(ei()(POST, CTX) * pi()(POST, CTX)), rtol=1e-5)
    # Cost weighting a log product subtracts the log cost.
    np.testing.assert_allclose(chain(prod, cost_weighting())(POST, CTX),
                               expected - jnp.log(CTX.costs), rtol=1e-5)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        log_product(ei(), pi(), weights=[1.0, -1.0])


def test_a_custom_transform_module():
    class Clip(ScoreTransform):
        ceiling: float

        def apply(self, scores, posterior, context, log_space):
            return jnp.minimum(scores, jnp.log(self.ceiling) if log_space else self.ceiling)

    np.testing.assert_allclose(chain(ei(), Clip(0.1))(POST, CTX),
                               jnp.minimum(ei()(POST, CTX), 0.1), rtol=1e-6)
    np.testing.assert_allclose(chain(log_ei(), Clip(0.1))(POST, CTX),
                               jnp.minimum(log_ei()(POST, CTX), np.log(0.1)), rtol=1e-6)


def test_composed_acquisitions_jit_and_differentiate():
    acq = chain(weighted_sum(ei(), max_uncertainty(), weights=[1.0, 0.1]), cost_weighting())

    def total(mean):
        return jnp.sum(acq(Posterior(mean, POST.variance), CTX))

    g = jax.jit(jax.grad(total))(POST.mean)
    assert bool(jnp.all(jnp.isfinite(g))) and bool(jnp.all(g > 0))  # EI rises with the mean


def test_type_errors_for_things_that_are_not_acquisitions():
    with pytest.raises(TypeError, match="must be callable"):
        acquisition(3.0)
    with pytest.raises(TypeError, match="score transforms"):
        chain(ei(), 3.0)
    with pytest.raises(TypeError, match="stemjax.posterior.Posterior"):
        ei()((jnp.zeros(2), jnp.ones(2)), CTX)
