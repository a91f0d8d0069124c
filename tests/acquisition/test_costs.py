"""Motion time and cost (paper 004 eqs. 4-6), row A12, dose cost, recency, cost monotonicity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stemjax.acquisition import (
    Context,
    DoseCost,
    MotionCost,
    chain,
    cost_aware,
    cost_aware_score,
    cost_weighted,
    cost_weighting,
    dose_cost,
    ei,
    ei_per_cost,
    log_cost_aware_score,
    log_ei,
    motion_cost,
    motion_time,
    recency_factor,
    recency_penalty,
    sum_costs,
)
from stemjax.posterior import Posterior


def test_motion_time_eq5_with_the_paper_settings():
    # d_bs = 15 µm, t_bs = 0.02 s, t_st = 5 s, v = 10 µm/s (paper 004 §IV.3).
    d = jnp.array([0.0, 15.0, 15.1, 100.0, 300.0])
    np.testing.assert_allclose(motion_time(d), [0.02, 0.02, 5.02 + 1.51, 5.02 + 10.0, 5.02 + 30.0],
                               rtol=1e-6)


def test_motion_cost_eq6_is_one_within_reach_and_alpha_times_time_beyond():
    d = jnp.array([3.0, 40.0])
    np.testing.assert_allclose(motion_cost(d), [1.0, 5.02 + 4.0], rtol=1e-6)
    np.testing.assert_allclose(motion_cost(d, cost_per_s=0.5, beam_shift_cost=2.0),
                               [2.0, 0.5 * 9.02], rtol=1e-6)
    model = MotionCost(stage_speed_um_per_s=20.0, stage_latency_s=1.0)
    np.testing.assert_allclose(model.time(d), [0.02, 1.02 + 2.0], rtol=1e-6)
    ctx = Context(positions=jnp.array([[3.0, 4.0], [30.0, 40.0]]), position=jnp.zeros(2))
    np.testing.assert_allclose(model(Posterior(jnp.zeros(2), jnp.ones(2)), ctx),
                               [1.0, 1.02 + 2.5], rtol=1e-6)


def test_a12_inverse_cost_weighted_utility():
    assert float(cost_weighted(0.2, 2.0)) == pytest.approx(0.1, abs=1e-7)
    assert float(cost_weighted(-0.2, 2.0)) == pytest.approx(-0.4, abs=1e-7)
    assert float(cost_aware_score(0.2, 2.0)) == pytest.approx(0.1, abs=1e-7)
    np.testing.assert_allclose(float(log_cost_aware_score(np.log(0.2), 2.0)),
                               np.log(0.2) - np.log(2.0), rtol=1e-6)
    post = Posterior(jnp.array([-0.5, 0.3]), jnp.array([1.0, 0.2]))
    ctx = Context(best=0.0, costs=jnp.array([3.0, 0.5]))
    np.testing.assert_allclose(chain(ei(), cost_weighting(alpha=0.0))(post, ctx), ei()(post, ctx))
    np.testing.assert_allclose(chain(ei(), cost_weighting(alpha=2.0))(post, ctx),
                               ei()(post, ctx) / ctx.costs**2, rtol=1e-6)
    np.testing.assert_allclose(chain(log_ei(), cost_weighting())(post, ctx),
                               log_ei()(post, ctx) - jnp.log(ctx.costs), rtol=1e-6)
    # The named built-in is the same chain.
    np.testing.assert_allclose(ei_per_cost(0.0)(post, ctx), ei()(post, ctx))
    np.testing.assert_allclose(ei_per_cost(2.0)(post, ctx), ei()(post, ctx) / ctx.costs**2,
                               rtol=1e-6)
    np.testing.assert_allclose(ei_per_cost(0.5, log=True)(post, ctx),
                               log_ei()(post, ctx) - 0.5 * jnp.log(ctx.costs), rtol=1e-6)


def test_eq4_cost_aware_score_with_the_motion_cost_model():
    post = Posterior(jnp.array([0.0, 0.0, 0.0]), jnp.ones(3))
    ctx = Context(best=0.0, positions=jnp.array([[1.0, 0.0], [0.0, 14.0], [100.0, 0.0]]),
                  position=jnp.zeros(2))
    scores = cost_aware(ei(), MotionCost())(post, ctx)
    a = float(ei()(post, ctx)[0])
    np.testing.assert_allclose(scores, [a, a, a / (5.02 + 10.0)], rtol=1e-6)
    assert int(jnp.argmax(scores)) in (0, 1)  # same utility: the stage move loses


def test_dose_cost_linear_and_with_a_critical_dose(x64):
    np.testing.assert_allclose(dose_cost(jnp.array([0.0, 100.0]), weight=0.01), [0.0, 1.0])
    # D_c → ∞ recovers the linear cost; exposure makes new dose dearer.
    np.testing.assert_allclose(float(dose_cost(100.0, critical_dose_e_per_A2=1e9)), 100.0,
                               rtol=1e-6)
    fresh = float(dose_cost(100.0, critical_dose_e_per_A2=1000.0))
    exposed = float(dose_cost(100.0, accumulated_e_per_A2=500.0, critical_dose_e_per_A2=1000.0))
    np.testing.assert_allclose(fresh, 1000.0 * np.expm1(0.1), rtol=1e-12)
    np.testing.assert_allclose(exposed, fresh * np.exp(0.5), rtol=1e-12)
    ctx = Context(dose=jnp.array([50.0, 100.0]), accumulated_dose=jnp.array([0.0, 500.0]),
                  position=jnp.zeros(2), positions=jnp.zeros((2, 2)))
    both = sum_costs(MotionCost(), DoseCost(weight=0.01))
    np.testing.assert_allclose(both(Posterior(jnp.zeros(2), jnp.ones(2)), ctx), [1.5, 2.0])


def test_recency_factor_and_penalty():
    positions = jnp.array([[0.0, 0.0], [1.0, 0.0], [50.0, 0.0]])
    visited = jnp.array([[0.0, 0.0], [50.0, 0.0]])
    mask = jnp.array([True, False])
    f = recency_factor(positions, visited, length_scale_um=1.0, mask=mask, strength=0.8)
    np.testing.assert_allclose(f, [0.2, 1 - 0.8 * np.exp(-0.5), 1.0], rtol=1e-6)
    aged = recency_factor(positions, visited, length_scale_um=1.0, age=jnp.array([2.0, 0.0]),
                          strength=0.8, decay=0.5)
    np.testing.assert_allclose(aged[0], 1 - 0.8 * 0.25, rtol=1e-6)
    post = Posterior(jnp.zeros(3), jnp.ones(3))
    ctx = Context(best=0.0, positions=positions, visited=visited, visited_mask=mask)
    base = ei()(post, ctx)
    np.testing.assert_allclose(chain(ei(), recency_penalty(1.0, 0.8))(post, ctx), base * f,
                               rtol=1e-6)
    np.testing.assert_allclose(chain(log_ei(), recency_penalty(1.0, 0.8))(post, ctx),
                               jnp.log(base) + jnp.log(f), rtol=1e-5)


utilities = st.floats(-1e3, 1e3, allow_nan=False, width=32)
costs = st.floats(0.0009765625, 1024.0, allow_nan=False, width=32)


@settings(max_examples=80, deadline=None)
@given(utilities, costs, costs, st.floats(0.0, 3.0), st.booleans())
def test_cost_weighting_never_favours_a_dearer_candidate(a, c1, c2, alpha, log_space):
    cheap, dear = min(c1, c2), max(c1, c2)
    s = np.asarray(cost_weighted(np.float32([a, a]), np.float32([cheap, dear]), alpha=alpha,
                                 log_space=log_space))
    assert s[1] <= s[0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: motion_time(10.0, stage_speed_um_per_s=0.0), r"stage_speed_um_per_s must be > 0"),
        (lambda: MotionCost(stage_speed_um_per_s=-1.0), r"stage_speed_um_per_s must be > 0 µm/s"),
        (lambda: motion_cost(-1.0), r"distance_um must be >= 0 µm"),
        (lambda: cost_weighted(1.0, 0.0), r"costs must be > 0"),
        (lambda: cost_weighting(alpha=-1.0), r"alpha must be >= 0"),
        (lambda: chain(ei(), cost_weighting())(Posterior(jnp.zeros(1), jnp.ones(1)),
                                                Context(best=0.0, costs=jnp.array([-2.0]))),
         r"context.costs must be > 0"),
        (lambda: chain(ei(), cost_weighting())(Posterior(jnp.zeros(1), jnp.ones(1)),
                                                Context(best=0.0)),
         r"cost_weighting needs context.costs"),
        (lambda: dose_cost(1.0, critical_dose_e_per_A2=0.0), r"critical_dose_e_per_A2 must be > 0"),
        (lambda: recency_penalty(1.0, strength=1.0), r"strength must lie in \[0, 1\)"),
        (lambda: recency_factor(jnp.zeros((2, 2)), jnp.zeros((1, 3)), length_scale_um=1.0),
         r"must share d"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_cost_weighted_scores_vmap_over_campaigns():
    post = Posterior(jnp.zeros((3, 4)), jnp.ones((3, 4)))
    ctx = Context(best=jnp.zeros(3), positions=jnp.zeros((3, 4, 2)).at[:, :, 0].set(
        jnp.array([0.0, 10.0, 20.0, 40.0])), position=jnp.zeros((3, 2)))
    scores = jax.vmap(cost_aware(ei(), MotionCost()))(post, ctx)
    assert scores.shape == (3, 4)
    np.testing.assert_allclose(scores[:, 2] / scores[:, 0], 1 / 7.02, rtol=1e-6)
