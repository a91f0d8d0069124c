"""Campaigns on random particle libraries (paper 004 §IV): pure, vectorised, within budget.

Every campaign here shares one small library configuration (3 × 3 fields of view), the same
number of steps and the same instrument, so the compiled run is reused across tests (the
switch rules are arrays, so ``mu``, ``every`` and ``exhaust`` share one compilation).
"""

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.acquisition import dirichlet_compositions, expected_switch_gain
from stemjax.campaign import (
    LIBRARY_RECORDS,
    LibrarySurrogate,
    SweepConfig,
    expected_max_poisson,
    library_policy,
    read_netcdf,
    run_library,
    run_many_libraries,
    sweep,
    validate,
)
from stemjax.campaign.library import conditioned
from stemjax.campaign.presets import PRESETS, preset
from stemjax.models import log_marginal_likelihood
from stemjax.worlds import ACTIONS, Instrument, LibraryConfig, eval_grid, make_library

SMALL = LibraryConfig(area_um=(90.0, 90.0))
STEPS = 20
INSTRUMENT = Instrument()


@pytest.fixture(scope="module")
def libraries():
    keys = jax.random.split(jax.random.key(0), 3)
    return jax.vmap(lambda k: make_library(k, SMALL))(keys)


def _one(libraries, i):
    return jax.tree.map(lambda x: x[i], libraries)


@pytest.fixture(scope="module")
def batch(libraries):
    keys = jax.random.split(jax.random.key(1), 3)
    state, records = run_many_libraries(keys, libraries, library_policy("mu"), INSTRUMENT, STEPS)
    return keys, state, records


def test_vmap_over_campaigns_equals_a_loop_and_same_key_same_result(libraries, batch):
    keys, state, records = batch
    assert set(records) == set(LIBRARY_RECORDS)
    assert records["uncertainty"].shape == (3, STEPS)
    assert records["composition"].shape == (3, STEPS, 3)
    policy = library_policy("mu")
    for i in range(3):
        _, one = run_library(keys[i], _one(libraries, i), policy, INSTRUMENT, STEPS)
        for name in LIBRARY_RECORDS:
            np.testing.assert_allclose(one[name], records[name][i], rtol=2e-5, atol=2e-6,
                                       err_msg=name)  # fmt: skip
    _, again = run_library(keys[0], _one(libraries, 0), policy, INSTRUMENT, STEPS)
    _, once = run_library(keys[0], _one(libraries, 0), policy, INSTRUMENT, STEPS)
    for name in LIBRARY_RECORDS:
        np.testing.assert_array_equal(again[name], once[name])


def test_records_are_consistent(libraries, batch):
    _, state, rec = batch
    rec = {k: np.asarray(v) for k, v in rec.items()}
    particles = rec["particle"]
    assert np.all(rec["measured"]) and np.all(particles >= 0)
    for i in range(3):  # no particle is measured twice, seeds included
        seeds = np.asarray(state.seeds[i])
        assert len(set(particles[i]) | set(seeds)) == STEPS + 3
    # per-step time: one beam shift and one EELS per measurement, a region change costs
    # stage + retune + EDX; elapsed time is their running sum after the start
    per_step = sum(rec[f"time_{k}_s"] for k in ACTIONS)
    np.testing.assert_allclose(np.diff(rec["elapsed_s"], axis=1), per_step[:, 1:], rtol=1e-5)
    np.testing.assert_allclose(rec["time_eels_s"], 1.0)
    np.testing.assert_allclose(rec["time_edx_s"], np.where(rec["switched"], 10.0, 0.0))
    np.testing.assert_allclose(rec["time_retune_s"], np.where(rec["switched"], 5.0, 0.0))
    # the state's clock equals the records' plus the start (retune, EDX, 3 seeds)
    np.testing.assert_allclose(np.asarray(state.time_s).sum(1), rec["elapsed_s"][:, -1], rtol=1e-6)
    start = 5.0 + 10.0 + 3 * 1.02
    np.testing.assert_allclose(rec["elapsed_s"][:, 0] - per_step[:, 0], start, rtol=1e-5)
    # the measured particle lies in the field of view of its region
    centres = np.asarray(libraries.region_centres_um)
    for i in range(3):
        c = centres[i][rec["region"][i]]
        assert np.all(np.abs(rec["x_um"][i] - c[:, 0]) <= 15.0 + 1e-4)
        assert np.all(np.abs(rec["y_um"][i] - c[:, 1]) <= 15.0 + 1e-4)
    # the max-uncertainty model's mean uncertainty falls as particles are measured
    assert np.all(rec["uncertainty"][:, -1] < rec["uncertainty"][:, 0])


def test_switch_follows_eqs_7_to_17(libraries, batch):
    _, _, rec = batch
    rec = {k: np.asarray(v) for k, v in rec.items()}
    previous = np.concatenate([np.zeros((3, 1)), rec["region_fraction"][:, :-1]], axis=1)
    not_exhausted = previous < 1.0
    # a move with particles left is taken only when V_switch = E_gain − C_switch > 0 ...
    assert np.all(rec["switch_value"][rec["switched"] & not_exhausted] > 0)
    assert np.all(rec["switch_value"][~rec["switched"]] <= 0)
    # ... where C_switch = t_switch · V_stay / t_meas (t_meas = 1 s): t_switch is 10 s EDX +
    # 5 s retune + 0.02 s beam shift + d / (10 µm/s), d from 30 µm (a side) to 85 µm (3 × 3)
    v_stay = rec["stay_value"]
    ok = v_stay > 1e-3
    t_switch = (rec["expected_gain"] - rec["switch_value"])[ok] / v_stay[ok]
    assert np.all((t_switch > 18.02 - 1e-3) & (t_switch < 15.02 + 84.9 / 10 + 1e-3))
    assert np.all(v_stay >= 0) and np.all(rec["expected_gain"] > 0)
    assert rec["switched"].any()


def test_fixed_rules_every_and_exhaust(libraries):
    key = jax.random.key(3)
    lib = _one(libraries, 1)
    _, every = run_library(key, lib, library_policy("every", switch_every=4), INSTRUMENT, STEPS)
    switched = np.asarray(every["switched"])
    # seeds (3) + 1 measurement reach 4 in the first region, then 4 per region
    np.testing.assert_array_equal(np.flatnonzero(switched), np.arange(1, STEPS, 4))
    assert np.all(np.asarray(every["neighbour"])[switched])  # the nearest region is adjacent
    _, exhaust = run_library(key, lib, library_policy("exhaust"), INSTRUMENT, STEPS)
    frac = np.asarray(exhaust["region_fraction"])
    moved = np.flatnonzero(np.asarray(exhaust["switched"]))
    assert moved.size  # the campaign does leave regions
    assert all(frac[s - 1] == 1.0 for s in moved if s > 0)  # only an exhausted region is left


def test_time_budget_is_never_exceeded(libraries, batch):
    keys, _, _ = batch
    budgets = jnp.array([25.0, 45.0, math.inf])
    state, rec = run_many_libraries(keys, libraries, library_policy("mu"), INSTRUMENT, STEPS,
                                    time_budget_s=budgets)  # fmt: skip
    elapsed = np.asarray(rec["elapsed_s"])
    assert np.all(elapsed <= np.asarray(budgets)[:, None])
    done = np.asarray(rec["done"])
    assert done[0].any() and not done[2].any()
    # once stopped, a campaign measures nothing more and its clock stands still
    first = np.argmax(done[0])
    assert not np.asarray(rec["measured"])[0, first:].any()
    assert np.all(elapsed[0, first:] == elapsed[0, first - 1])
    # 25 s: the 18.06 s start leaves room for six 1.02 s measurements and no region change
    assert int(np.asarray(rec["measured"])[0].sum()) == 6
    with pytest.raises(ValueError, match=r"time_budget_s must be >= 18.06 s"):
        run_library(keys[0], _one(libraries, 0), library_policy("mu"), INSTRUMENT, STEPS,
                    time_budget_s=10.0)  # fmt: skip


def test_incremental_factor_equals_a_fresh_factorisation(batch):
    _, state, _ = batch
    one = jax.tree.map(lambda x: np.asarray(x[0], np.float64), (state.data, state.chol, state.chol_inv))
    one = dict(zip(("data", "chol", "chol_inv"), one))
    mask = np.asarray(state.data.mask[0])
    x, y = one["data"].x[mask], one["data"].y[mask]
    # closed form in float64: K = s² exp(−|x − x'|²/2ℓ²) + σ² I (ℓ = 0.1, s² = 0.25, σ² = 0.01)
    sq = ((x[:, None] - x[None]) ** 2).sum(-1)
    k = 0.25 * np.exp(-0.5 * sq / 0.01) + (0.01 + 100 * np.finfo(np.float32).eps * 0.25) * np.eye(len(y))
    chol = np.linalg.cholesky(k)
    np.testing.assert_allclose(one["chol"][np.ix_(mask, mask)], chol, atol=2e-5)
    np.testing.assert_allclose(one["chol_inv"][np.ix_(mask, mask)], np.linalg.inv(chol),
                               atol=2e-3, rtol=1e-3)  # fmt: skip
    free = ~mask
    np.testing.assert_array_equal(one["chol"][np.ix_(free, free)], np.eye(free.sum()))
    grid = eval_grid(3).astype(np.float64)
    ks = 0.25 * np.exp(-0.5 * ((grid[:, None] - x[None]) ** 2).sum(-1) / 0.01)
    mean = y.mean() + ks @ np.linalg.solve(k, y - y.mean())
    var = 0.25 - np.einsum("ij,ji->i", ks, np.linalg.solve(k, ks.T))
    first = jax.tree.map(lambda a: a[0], state)
    post = conditioned(first.params, first.data, first.chol, first.chol_inv).predict(
        jnp.asarray(grid, jnp.float32))
    np.testing.assert_allclose(post.mean, mean, atol=2e-4)
    np.testing.assert_allclose(post.variance, var, atol=2e-4)


def test_expected_gain_pool_formula_matches_monte_carlo_and_closed_form():
    # uniform scores: E[max of N ~ Poisson(λ) uniforms] = 1 − (1 − e^{−λ})/λ
    pool = (jnp.arange(4096) + 0.5) / 4096
    for lam in (0.5, 3.0, 18.0):
        expect = 1 - (1 - math.exp(-lam)) / lam
        assert float(expected_max_poisson(pool, lam)) == pytest.approx(expect, abs=2e-4)
    assert float(expected_max_poisson(pool, 0.0)) == 0.0
    # the same E_gain as the Monte Carlo of stemjax.acquisition.expected_switch_gain
    prior = dirichlet_compositions(jnp.ones(3))
    score = lambda c: c[:, 0] * c[:, 1]  # noqa: E731
    mc = expected_switch_gain(jax.random.key(0), score, density_per_um2=0.02, area_um2=900.0,
                              sample_compositions=prior, n_samples=2048, max_particles=48)  # fmt: skip
    pooled = expected_max_poisson(score(prior(jax.random.key(1), (8192,))), 18.0)
    assert float(pooled) == pytest.approx(float(mc), rel=0.015)


def test_library_sweep_preset_cli_and_netcdf(tmp_path, monkeypatch, capsys):
    for name in ("library-3d", "library-4d", "library-5d"):
        validate(preset(name))
    # a small sweep with the same shapes as the tests above (no new compilation)
    small = SweepConfig(world="library", policies=("mu", "every"), campaigns=3, chunk=3,
                        steps=STEPS, n_seeds=3, feature_space=False,
                        world_options={"area_um": [90.0, 90.0]})  # fmt: skip
    monkeypatch.setitem(PRESETS, "library-3d", small)
    from stemjax.cli import main

    out = tmp_path / "lib"
    assert main(["sweep", "--preset", "library-3d", "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| mean absolute error |" in text and "Paired Wilcoxon" in text
    assert {"error.png", "visit_fractions.png"} <= {p.name for p in (out / "figures").glob("*")}
    results, config, _ = read_netcdf(out / "results.nc")
    assert config == small
    assert results["composition"].shape == (2, 3, STEPS, 3)
    assert results["uncertainty"].shape == (2, 3, STEPS)
    again = sweep(small, out, progress=False)  # resumes from the chunks on disk
    np.testing.assert_allclose(results["error"], again["error"], rtol=1e-6)
    bad = [
        (dict(policies=("mu", "beacon")), "policies must be among .* for world 'library'"),
        (dict(world_options={"speed": 3}), "world_options for world 'library' must be among"),
        (dict(world_options={"fov_um": [400.0, 30.0]}), "fov_um must fit"),
        (dict(world_options={"stage_speed_um_per_s": -1.0}), "stage_speed_um_per_s must be > 0"),
    ]
    for change, message in bad:
        with pytest.raises(ValueError, match=message):
            validate(dataclasses.replace(small, **change))


def test_refitting_campaigns_learn_hyperparameters_and_vmap_equals_a_loop(libraries):
    """With ``refit_steps`` > 0 the GP is refactored every step and its hyperparameters are
    refitted by Adam: they move from the starting values, the evidence of the final data under
    them is higher than under the starting values, and vmap over campaigns equals a loop."""
    surrogate = LibrarySurrogate(refit_steps=5, learning_rate=0.05)
    policy = library_policy("mu", surrogate=surrogate)
    fixed = library_policy("mu")
    keys = jax.random.split(jax.random.key(2), 2)
    states, records = run_many_libraries(keys, jax.tree.map(lambda x: x[:2], libraries), policy,
                                         INSTRUMENT, STEPS)  # fmt: skip
    for i in range(2):
        state, one = run_library(keys[i], _one(libraries, i), policy, INSTRUMENT, STEPS)
        for name in ("particle", "region", "uncertainty", "error"):
            np.testing.assert_allclose(one[name], records[name][i], rtol=1e-4, atol=1e-5,
                                       err_msg=name)  # fmt: skip
        start, _ = run_library(keys[i], _one(libraries, i), fixed, INSTRUMENT, STEPS)
        moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                             state.params.kernel, start.params.kernel)  # fmt: skip
        assert max(jax.tree.leaves(moved)) > 1e-3
        fitted = log_marginal_likelihood(state.params, state.data)
        initial = log_marginal_likelihood(eqx.tree_at(lambda p: p.mean, start.params,
                                                      state.params.mean), state.data)  # fmt: skip
        assert float(fitted) > float(initial)
