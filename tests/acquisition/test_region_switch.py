"""Region switching of paper 004 (eqs. 7-17) and the Monte-Carlo expected switch gain."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.acquisition import (
    Context,
    best_local_acquisition,
    chain,
    compositional_novelty,
    dirichlet_compositions,
    ei,
    expected_switch_gain,
    novelty_weighted,
    novelty_weighting,
    poisson_capacity,
    region_switch,
    remaining_opportunity,
    stay_value,
    switch_cost,
    switch_value,
    with_novelty,
)
from stemjax.posterior import Posterior

UNIFORM_PAIR = dirichlet_compositions(jnp.ones(2))  # (u, 1 − u) with u ~ U(0, 1)
# One Monte Carlo configuration for every test: the estimator compiles once (ρ and A are traced).
MC = dict(sample_compositions=UNIFORM_PAIR, n_samples=2**15, max_particles=64)


def first_fraction(c):
    return c[:, 0]


def test_eqs_7_to_9_remaining_opportunity_best_local_and_stay_value():
    assert float(remaining_opportunity(3, 12)) == 0.75
    assert float(remaining_opportunity(0, 0)) == 0.0  # an empty region offers nothing
    scores = jnp.array([0.9, 0.4, 0.7, 2.0])
    unmeasured = jnp.array([False, True, True, False])
    assert float(best_local_acquisition(scores, unmeasured)) == pytest.approx(0.7)
    assert float(best_local_acquisition(scores, jnp.zeros(4, bool))) == 0.0
    assert float(stay_value(0.75, 0.7)) == pytest.approx(0.525)


@pytest.mark.parametrize("rate", [0.0, 0.5, 3.0, 12.0])
def test_eq13_monte_carlo_gain_matches_the_poisson_uniform_closed_form(rate):
    """E[max of N ~ Poisson(λ) uniform scores] (0 when N = 0) = 1 − (1 − e^{−λ})/λ."""
    assert poisson_capacity(rate) <= MC["max_particles"]
    gain = expected_switch_gain(jax.random.key(5), first_fraction, density_per_um2=rate / 100.0,
                                area_um2=100.0, **MC)
    exact = 0.0 if rate == 0 else 1.0 - (1.0 - np.exp(-rate)) / rate
    np.testing.assert_allclose(float(gain), exact, atol=0.008)  # ≈ 4 standard errors


def test_switch_gain_same_key_same_value_and_capacity():
    kwargs = dict(density_per_um2=0.02, area_um2=900.0, **MC)
    a = expected_switch_gain(jax.random.key(1), first_fraction, **kwargs)
    b = expected_switch_gain(jax.random.key(1), first_fraction, **kwargs)
    assert float(a) == float(b)
    assert poisson_capacity(18.0) == 71  # ⌈18 + 10·√18 + 10⌉
    # max_particles=None takes poisson_capacity(ρA): ρA = 15 gives the 64 slots of MC.
    assert poisson_capacity(15.0) == MC["max_particles"]
    default = expected_switch_gain(jax.random.key(1), first_fraction, density_per_um2=0.15,
                                   area_um2=100.0, sample_compositions=UNIFORM_PAIR,
                                   n_samples=MC["n_samples"])
    explicit = expected_switch_gain(jax.random.key(1), first_fraction, density_per_um2=0.15,
                                    area_um2=100.0, **MC)
    assert float(default) == float(explicit)
    with pytest.raises(ValueError, match="needs a static max_particles"):
        jax.jit(lambda rho: expected_switch_gain(
            jax.random.key(1), first_fraction, density_per_um2=rho, area_um2=900.0,
            sample_compositions=UNIFORM_PAIR))(0.02)


def test_eq14_novelty_and_eq15_augmentation():
    seen = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mask = jnp.array([True, True, False])
    c = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    n = compositional_novelty(c, seen, mask, length_scale=1.0)
    np.testing.assert_allclose(n, [0.0, 1 - np.exp(-np.sqrt(2)), 1 - np.exp(-np.sqrt(0.5))],
                               rtol=1e-6)
    np.testing.assert_allclose(compositional_novelty(c, seen, jnp.zeros(3, bool)), 1.0)
    np.testing.assert_allclose(novelty_weighted(jnp.array([2.0, -2.0]), 0.5, weight=2.0),
                               [4.0, -1.0])
    np.testing.assert_allclose(novelty_weighted(jnp.array([0.3]), 0.5, weight=2.0,
                                                log_space=True), [0.3 + np.log(2.0)])
    # The transform reads candidate and seen compositions from the context.
    post = Posterior(jnp.zeros(3), jnp.ones(3))
    ctx = Context(best=0.0, compositions=c, seen_compositions=seen, seen_mask=mask)
    np.testing.assert_allclose(chain(ei(), novelty_weighting(0.5, 1.0))(post, ctx),
                               ei()(post, ctx) * (1 + 0.5 * n), rtol=1e-6)
    # ã(c) = a(c)(1 + λ n(c)) is what E_gain scores in place of a (eq. 15).
    pairs = jnp.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    seen_pairs = jnp.array([[1.0, 0.0], [0.9, 0.1]])
    aug = with_novelty(first_fraction, seen_pairs, weight=2.0)
    expected = pairs[:, 0] * (1 + 2.0 * compositional_novelty(pairs, seen_pairs))
    np.testing.assert_allclose(aug(pairs), expected, rtol=1e-6)
    assert float(aug(pairs)[0]) == 1.0  # a seen composition gains nothing


def test_eqs_16_17_switch_cost_value_and_decision():
    assert float(switch_cost(20.0, 0.5, 1.0)) == 10.0
    assert float(switch_value(12.0, 10.0)) == 2.0
    local = jnp.array([0.2, 0.9, 0.1, 0.0])
    measured = jnp.array([True, False, True, False])
    particles = jnp.array([True, True, True, False])
    decide = lambda t: region_switch(  # noqa: E731
        jax.random.key(2), local, measured, first_fraction, particles=particles,
        density_per_um2=0.05, area_um2=100.0, t_switch_s=t, t_meas_s=1.0, **MC)
    quick, slow = decide(0.1), decide(100.0)
    assert float(quick.remaining) == pytest.approx(1 / 3)
    assert float(quick.best_local) == pytest.approx(0.9)
    assert float(quick.stay_value) == pytest.approx(0.3)
    exact_gain = 1 - (1 - np.exp(-5.0)) / 5.0
    np.testing.assert_allclose(float(quick.expected_gain), exact_gain, atol=0.008)
    np.testing.assert_allclose(float(slow.switch_cost), 100.0 * 0.3, rtol=1e-6)
    assert bool(quick.switch) and not bool(slow.switch)
    np.testing.assert_allclose(float(quick.switch_value),
                               float(quick.expected_gain) - 0.1 * 0.3, rtol=1e-6)


def test_region_switch_vmaps_over_campaigns():
    keys = jax.random.split(jax.random.key(0), 3)
    local = jnp.array([[0.5, 0.1], [0.5, 0.1], [0.0, 0.0]])
    measured = jnp.array([[False, True], [True, True], [False, False]])
    out = jax.vmap(lambda k, s, m: region_switch(
        k, s, m, first_fraction, density_per_um2=0.03, area_um2=100.0, t_switch_s=5.0,
        t_meas_s=1.0, sample_compositions=UNIFORM_PAIR, n_samples=1024, max_particles=64))(
        keys, local, measured)
    assert out.switch.shape == (3,)
    np.testing.assert_allclose(out.stay_value, [0.25, 0.0, 0.0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: compositional_novelty(jnp.array([[0.7, 0.7]]), jnp.array([[1.0, 0.0]])),
         r"compositions must lie on the simplex.*sum 1\.4"),
        (lambda: compositional_novelty(jnp.array([[1.2, -0.2]]), jnp.array([[1.0, 0.0]])),
         r"compositions must lie on the simplex"),
        (lambda: chain(ei(), novelty_weighting())(
            Posterior(jnp.zeros(1), jnp.ones(1)),
            Context(best=0.0, compositions=jnp.array([[0.5, 0.6]]),
                    seen_compositions=jnp.array([[1.0, 0.0]]))),
         r"context.compositions must lie on the simplex"),
        (lambda: expected_switch_gain(jax.random.key(0), first_fraction, density_per_um2=1.0,
                                      area_um2=1.0,
                                      sample_compositions=lambda k, s: jnp.ones((*s, 2)),
                                      n_samples=4),
         r"sample_compositions\(key, shape\) must lie on the simplex"),
        (lambda: expected_switch_gain(jax.random.key(0), first_fraction, density_per_um2=-1.0,
                                      area_um2=1.0, sample_compositions=UNIFORM_PAIR),
         r"density_per_um2 must be >= 0"),
        (lambda: remaining_opportunity(5, 3), r"n_measured must be <= n_total"),
        (lambda: switch_cost(1.0, 0.5, 0.0), r"t_meas_s must be > 0 s"),
        (lambda: dirichlet_compositions(jnp.array([1.0, 0.0])), r"concentration must be > 0"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
