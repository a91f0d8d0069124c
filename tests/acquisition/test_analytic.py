"""Analytic acquisitions: rows A1, A2, A6, A7, BoTorch reference values, properties, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stemjax.acquisition import (
    Context,
    ei,
    expected_improvement,
    log_ei,
    log_expected_improvement,
    log_probability_of_improvement,
    max_uncertainty,
    pi,
    posterior_mean,
    probability_of_improvement,
    ucb,
    upper_confidence_bound,
)
from stemjax.posterior import Posterior

from ._reference import botorch_reference


def _post(mean, std, dtype=jnp.float32):
    mean = jnp.asarray(mean, dtype)
    return Posterior(mean, jnp.broadcast_to(jnp.asarray(std, dtype) ** 2, mean.shape))


def test_a1_expected_improvement(dtype):
    post = _post([-0.5], 1.0, dtype)
    np.testing.assert_allclose(float(ei()(post, Context(best=0.0))[0]), 0.1977966, atol=1e-6)
    np.testing.assert_allclose(float(ei(maximize=False)(post, Context(best=0.0))[0]), 0.6977966,
                               atol=1e-6)
    assert ei()(post, Context(best=0.0)).dtype == dtype


@pytest.mark.parametrize("sigma", [0.01, 1.0, 7.5])
def test_a2_expected_improvement_at_the_incumbent(x64, sigma):
    value = expected_improvement(2.0, sigma, 2.0)
    np.testing.assert_allclose(float(value), 0.3989423 * sigma, rtol=1e-6)
    np.testing.assert_allclose(float(value), sigma / np.sqrt(2 * np.pi), rtol=1e-14)


def test_a6_probability_of_improvement(dtype):
    post = _post([0.0], 1.0, dtype)
    np.testing.assert_allclose(float(pi()(post, Context(best=1.96))[0]), 0.02500, atol=1e-5)
    np.testing.assert_allclose(float(pi(maximize=False)(post, Context(best=1.96))[0]), 0.97500,
                               atol=1e-5)


def test_a7_upper_confidence_bound_is_exact(dtype):
    post = _post([0.5], 1.0, dtype)
    assert float(ucb(1.0)(post)[0]) == 1.5
    assert float(upper_confidence_bound(0.5, 1.0, 1.0)) == 1.5
    assert float(ucb(4.0, maximize=False)(post)[0]) == 1.5  # −0.5 + 2·1


def _grid(ref):
    g = ref["grid"]
    return np.asarray(g["mean"]), np.asarray(g["std"]), np.asarray(g["best"])


@pytest.mark.parametrize("maximize", [True, False])
def test_botorch_reference_float64(x64, maximize):
    ref = botorch_reference()["botorch"]
    mean, std, best = _grid(ref)
    tag = "max" if maximize else "min"
    got = {
        "ei": expected_improvement(mean, std, best, maximize=maximize),
        "log_ei": log_expected_improvement(mean, std, best, maximize=maximize),
        "pi": probability_of_improvement(mean, std, best, maximize=maximize),
        "log_pi": log_probability_of_improvement(mean, std, best, maximize=maximize),
    }
    for name, value in got.items():
        expected = np.asarray(ref["values"][f"{name}_{tag}"])
        # BoTorch's EI is the direct φ(z) + zΦ(z), which cancels to ~1e-17 absolute; its log Φ
        # rounds log(1 − Φ(−z)) to 0 once Φ(−z) < 1e-16, and both log Φ agree with mpmath to
        # ~3e-9 relative at z ≈ 5.5 (−1.89895626462e-8 there).
        rtol, atol = {"ei": (1e-10, 1e-15), "pi": (1e-10, 1e-15), "log_ei": (1e-10, 0.0),
                      "log_pi": (1e-8, 1e-15)}[name]
        np.testing.assert_allclose(np.asarray(value), expected, rtol=rtol, atol=atol,
                                   err_msg=f"{name}_{tag}")
    ug = ref["ucb_grid"]
    np.testing.assert_allclose(
        upper_confidence_bound(np.asarray(ug["mean"]), np.asarray(ug["std"]),
                               np.asarray(ug["beta"]), maximize=maximize),
        ref["ucb_values"][f"ucb_{tag}"], rtol=1e-14, atol=1e-15)


def test_botorch_reference_float32():
    """The same grid in float32: the log forms to 2e-6 relative, EI and PI to 1e-5."""
    ref = botorch_reference()["botorch"]
    mean, std, best = (x.astype(np.float32) for x in _grid(ref))
    for name, fn in [("ei", expected_improvement), ("log_ei", log_expected_improvement),
                     ("pi", probability_of_improvement),
                     ("log_pi", log_probability_of_improvement)]:
        value = fn(mean, std, best)
        assert value.dtype == jnp.float32
        expected = np.asarray(ref["values"][f"{name}_max"])
        rtol, atol = (2e-6, 2e-6) if name.startswith("log") else (1e-5, 1e-6)
        np.testing.assert_allclose(np.asarray(value, float), expected, rtol=rtol, atol=atol,
                                   err_msg=name)


def test_ucb_is_a_weighted_sum_of_mean_and_uncertainty():
    post = _post([0.1, -2.0, 3.0], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(ucb(2.25)(post),
                               posterior_mean()(post) + 1.5 * max_uncertainty()(post))
    np.testing.assert_allclose(max_uncertainty()(post), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(posterior_mean(False)(post), [-0.1, 2.0, -3.0])


def test_zero_std_gives_the_limits_and_finite_logs(x64):
    # σ = 0 is floored at 1e-6 (BoTorch floors the variance at 1e-12).
    np.testing.assert_allclose(float(expected_improvement(1.5, 0.0, 1.0)), 0.5, rtol=1e-12)
    assert float(expected_improvement(0.5, 0.0, 1.0)) == 0.0
    assert np.isfinite(float(log_expected_improvement(0.5, 0.0, 1.0)))
    assert np.isfinite(float(log_probability_of_improvement(0.5, 0.0, 1.0)))


def test_incumbent_defaults_to_the_best_masked_outcome():
    post = _post([0.0, 1.0], 1.0)
    outcomes = jnp.asarray([0.3, 9.0, -2.0])
    mask = jnp.array([True, False, True])
    ctx = Context(outcomes=outcomes, outcome_mask=mask)
    np.testing.assert_allclose(ei()(post, ctx), ei()(post, Context(best=0.3)), rtol=1e-6)
    np.testing.assert_allclose(ei(False)(post, ctx), ei(False)(post, Context(best=-2.0)),
                               rtol=1e-6)


def test_gradients_equal_finite_differences(x64):
    def f(m, s):
        return log_expected_improvement(m, s, 0.3) + expected_improvement(m, s, 0.3)

    grad = jax.jit(jax.grad(f, argnums=(0, 1)))
    for m, s in [(-3.0, 0.4), (0.2, 1.3), (2.0, 0.7)]:
        gm, gs = grad(m, s)
        eps = 1e-6
        np.testing.assert_allclose(float(gm), (f(m + eps, s) - f(m - eps, s)) / (2 * eps),
                                   rtol=1e-6)
        np.testing.assert_allclose(float(gs), (f(m, s + eps) - f(m, s - eps)) / (2 * eps),
                                   rtol=1e-6)


def test_vmap_over_campaigns_equals_a_loop():
    rng = np.random.default_rng(3)
    means = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
    variances = jnp.asarray(rng.uniform(0.1, 2.0, (4, 6)), jnp.float32)
    bests = jnp.asarray([0.0, 0.5, -1.0, 2.0], jnp.float32)
    for acq in (ei(), log_ei(), pi(), ucb(2.0)):
        batched = jax.vmap(acq)(Posterior(means, variances), Context(best=bests))
        assert batched.shape == (4, 6)
        for b in range(4):
            np.testing.assert_allclose(
                batched[b], acq(Posterior(means[b], variances[b]), Context(best=bests[b])),
                rtol=1e-6)


finite = st.floats(-1e4, 1e4, allow_nan=False)
positive = st.floats(0.0, 1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite, positive, finite), min_size=1, max_size=8))
def test_scores_are_finite_for_finite_inputs(rows):
    mean, std, best = (np.asarray(c, np.float32) for c in zip(*rows))
    pad = 8 - len(rows)  # one shape: one compilation
    mean, std, best = (np.pad(x, (0, pad), constant_values=1.0) for x in (mean, std, best))
    values = _all_scores(mean, std, best)
    assert bool(jnp.all(jnp.isfinite(values))), (np.asarray(values), rows)


@jax.jit
def _all_scores(mean, std, best):
    """Every analytic score, maximising and minimising, stacked: (9, n)."""
    scores = [fn(mean, std, best, maximize=maximize)
              for fn in (expected_improvement, log_expected_improvement,
                         probability_of_improvement, log_probability_of_improvement)
              for maximize in (True, False)]
    return jnp.stack([*scores, upper_confidence_bound(mean, std, 3.0)])


@settings(max_examples=60, deadline=None)
@given(finite, st.floats(0.0, 1e3), st.floats(0.0, 1e3), st.floats(0.0, 50.0), finite)
def test_ei_is_monotone_in_mean_and_std(mean, dm, std, ds, best):
    with jax.enable_x64(True):
        m = np.asarray([mean, mean + dm, mean])
        s = np.asarray([std, std, std + ds])
        value = np.asarray(expected_improvement(m, s, best))
        log_value = np.asarray(log_expected_improvement(m, s, best))
    tol = 1e-12 * np.abs(value[0]) + 1e-300
    assert value[1] >= value[0] - tol and value[2] >= value[0] - tol
    assert log_value[1] >= log_value[0] - 1e-12 * abs(log_value[0])
    assert log_value[2] >= log_value[0] - 1e-12 * abs(log_value[0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ei()(Posterior(jnp.zeros(2), jnp.array([1.0, -0.1])), Context(best=0.0)),
         r"posterior.variance must be >= 0.*-0\.1"),
        (lambda: ucb(-1.0), r"beta must be >= 0.*-1\.0"),
        (lambda: upper_confidence_bound(0.0, 1.0, -0.5), r"beta must be >= 0"),
        (lambda: expected_improvement(0.0, -1.0, 0.0), r"std must be >= 0"),
        (lambda: ei(min_std=0.0), r"min_std must be > 0"),
        (lambda: ei()(Posterior(jnp.zeros(2), jnp.ones(2))), r"ei needs context.best or "
                                                             r"context.outcomes"),
        (lambda: ei()(Posterior(jnp.zeros(2), jnp.ones(3))), r"same shape"),
        (lambda: ei()(Posterior(jnp.zeros(2), jnp.array([1.0, jnp.nan])), Context(best=0.0)),
         r"posterior.variance must be >= 0 and finite"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
