"""The campaign loop: vmap equals a loop, keys fix results, policies behave, user acquisitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.campaign import (
    MetricLabels,
    Policy,
    Surrogate,
    make_policy,
    run,
    run_many,
)
from stemjax.acquisition import ucb
from stemjax.worlds import World

FAST = Surrogate(fit_steps=20, refit_steps=2)


def _world(n_side=12):
    """A 2-D world on a grid: one smooth bump; inputs are the coordinates."""
    g = np.linspace(0.0, 1.0, n_side)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    x = np.stack([xx.ravel(), yy.ravel()], -1).astype(np.float32)
    y = np.exp(-((x[:, 0] - 0.8) ** 2 + (x[:, 1] - 0.3) ** 2) / 0.02).astype(np.float32)
    pos = np.stack(np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij"), -1)
    return World(
        inputs=x, targets=y, positions=pos.reshape(-1, 2).astype(np.float32),
        costs=np.ones(len(y), np.float32), seeds=np.array([0, 5, 30, 77, 100]),
        image=y.reshape(n_side, n_side), name="bump",
    )  # fmt: skip


def _labels(world, n_bins=5):
    target = jnp.minimum((world.targets / world.targets.max() * n_bins).astype(jnp.int32),
                         n_bins - 1)  # fmt: skip
    patch = (jnp.arange(world.targets.shape[0]) % 4).astype(jnp.int32)
    return MetricLabels(target, patch, patch, n_bins, 4)


def _tree_equal(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def test_vmap_over_campaigns_equals_a_loop():
    """BEACON: the policy with the most moving parts (joint samples, elite k-NN, keys)."""
    world = _world()
    labels = _labels(world)
    policy = make_policy("beacon", FAST)
    keys = jax.random.split(jax.random.key(0), 3)
    seeds = jnp.stack([jax.random.choice(k, world.size, (5,), replace=False) for k in keys])
    _, many = run_many(keys, world, policy, labels, 6, seeds)
    for c in range(3):
        _, one = run(keys[c], world, policy, labels, 6, seeds[c])
        _tree_equal({k: v[c] for k, v in many.items()}, one, rtol=1e-5, atol=1e-6)


def test_same_key_same_campaign_and_records_are_consistent():
    world = _world()
    labels = _labels(world)
    policy = make_policy("random", FAST)
    state, a = run(jax.random.key(3), world, policy, labels, 10)
    _, b = run(jax.random.key(3), world, policy, labels, 10)
    _, c = run(jax.random.key(4), world, policy, labels, 10)
    _tree_equal(a, b, rtol=0, atol=0)
    assert not np.array_equal(a["index"], c["index"])
    index = np.asarray(a["index"])
    # never a seed, never twice; targets and costs are those of the world
    assert len(set(index)) == 10 and not set(index) & set(np.asarray(world.seeds).tolist())
    np.testing.assert_array_equal(a["target"], np.asarray(world.targets)[index])
    np.testing.assert_allclose(a["cost_s"], 5.0 + np.arange(1, 11))
    assert int(state.step) == 10 and int(state.data.count) == 15
    np.testing.assert_array_equal(np.asarray(state.order)[5:], index)
    # coverage never falls and ends at the closed form for the visited set
    cov = np.asarray(a["coverage_patch"])
    assert np.all(np.diff(cov) >= 0)
    visited = np.concatenate([np.asarray(world.seeds), index])
    assert cov[-1] == pytest.approx(len(set(visited % 4)) / 4)


def test_ei_finds_the_bump_and_beats_random_on_average():
    world = _world()
    labels = _labels(world)
    keys = jax.random.split(jax.random.key(1), 8)
    best = {}
    for name in ("ei", "random"):
        _, rec = run_many(keys, world, make_policy(name, FAST), labels, 15)
        best[name] = np.asarray(rec["target"]).max(axis=1)
    assert np.all(best["ei"] > 0.9)  # the maximum (1.0 at the grid point nearest the bump)
    assert best["ei"].mean() > best["random"].mean()


def test_surrogate_learns_mae_falls_with_max_uncertainty():
    world = _world()
    _, rec = run(jax.random.key(2), world, make_policy("mu", FAST), _labels(world), 25)
    mae = np.asarray(rec["mae"])
    assert mae[-1] < 0.5 * mae[0]
    assert np.asarray(rec["uncertainty"])[-1] < np.asarray(rec["uncertainty"])[0]


def test_a_user_written_acquisition_runs_as_a_policy():
    world = _world()

    def lowest_mean(posterior, context):  # a plain function: minimise the prediction
        return -posterior.mean

    _, rec = run(jax.random.key(0), world, Policy("low", lowest_mean, FAST), _labels(world), 5)
    assert np.all(np.asarray(rec["target"]) < 0.05)
    _, rec = run(jax.random.key(0), world, Policy("ucb", ucb(beta=4.0), FAST), _labels(world), 5)
    assert rec["index"].shape == (5,)


def test_dkl_surrogate_runs_on_vector_inputs():
    world = _world()
    surrogate = Surrogate(model="dkl", fit_steps=10, refit_steps=2, learning_rate=0.01)
    _, rec = run(jax.random.key(0), world, make_policy("ei", surrogate), _labels(world), 4)
    assert np.all(np.isfinite(np.asarray(rec["mae"])))


def test_bad_budget_and_surrogate_are_refused():
    world = _world()
    with pytest.raises(ValueError, match=r"budget must be at most 139"):
        run(jax.random.key(0), world, make_policy("ei", FAST), _labels(world), 140)
    with pytest.raises(ValueError, match="policy must be one of"):
        make_policy("greedy")
    with pytest.raises(ValueError, match="model must be one of"):
        Surrogate(model="svm")
    with pytest.raises(ValueError, match="refit_steps must be an integer >= 1"):
        Surrogate(refit_steps=0)
    with pytest.raises(ValueError, match=r"principal_components must be at most 2 .* got 3"):
        Surrogate(principal_components=3).inputs(world.inputs)


def test_principal_components_are_the_projection_on_the_leading_axes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * np.array([5.0, 1.0, 0.1])  # variance mostly along axis 0
    pcs = np.asarray(Surrogate(principal_components=1).inputs(jnp.asarray(x, jnp.float32)))
    centred = x - x.mean(0)
    np.testing.assert_allclose(np.abs(pcs[:, 0]), np.abs(centred @ np.linalg.svd(centred)[2][0]),
                               rtol=1e-4, atol=1e-4)  # fmt: skip
    np.testing.assert_array_equal(Surrogate().inputs(x), x)  # 0: the raw inputs
