"""The functional STEMGym environment: same key, same episode; vmap equals a loop; the dose
never exceeds the budget; damage only where dose went; clipped actions are flagged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stemjax.worlds import stemgym
from stemjax.worlds.stemgym import Action, reset, step

from .conftest import tiny_world


def _run(world, key, actions, task="census"):
    """Loop of single steps; returns the final state and per-step outputs."""
    keys = jax.random.split(key, len(actions) + 1)
    state, _ = reset(keys[0], world, task)
    outputs = []
    for k, action in zip(keys[1:], actions):
        state, obs, reward, terminated, truncated, info = step(k, state, action, world)
        outputs.append((obs, reward, terminated, truncated, info))
    return state, outputs


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


ACTIONS = [Action(0, 3.0), Action(3, 1.0), Action(0, 2.0), Action(1, 9.0), Action(2, 0.5)]


def test_same_key_same_episode_and_other_keys_differ():
    world = tiny_world("SrTiO3", "hard")
    first = _run(world, jax.random.key(7), ACTIONS)
    again = _run(world, jax.random.key(7), ACTIONS)
    other = _run(world, jax.random.key(8), ACTIONS)
    assert _equal(first, again)
    assert not np.array_equal(first[0].frames, other[0].frames)
    assert not np.array_equal(first[0].drift_velocity, other[0].drift_velocity)


def test_vmap_over_episodes_equals_a_loop():
    world = tiny_world("GaN", "medium")
    rng = np.random.default_rng(0)
    episodes, steps = 3, 6
    tiles = rng.integers(-1, world.n_tiles + 1, (episodes, steps))  # some out of range
    dwells = rng.uniform(-1.0, 12.0, (episodes, steps))
    stops = np.zeros((episodes, steps), bool)
    stops[1, 3] = True  # episode 1 stops early; its later steps are no-ops
    keys = jax.random.split(jax.random.key(1), episodes)
    tasks = jnp.array([0, 2, 3])
    batched = jax.vmap(stemgym.rollout, in_axes=(0, None, 0, 0))(
        keys, world, tasks, Action(tiles, dwells, stops))
    final, (obs, rewards, terminated, truncated, infos) = batched
    for e in range(episodes):
        actions = [Action(tiles[e, s], dwells[e, s], stops[e, s]) for s in range(steps)]
        k_reset, k_steps = jax.random.split(keys[e])
        state, _ = reset(k_reset, world, int(tasks[e]))
        for s, k in enumerate(jax.random.split(k_steps, steps)):
            state, o, r, te, tr, info = step(k, state, actions[s], world)
            np.testing.assert_allclose(obs.image[e, s], o.image, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(rewards[e, s], r, atol=1e-6)
            assert bool(terminated[e, s]) == bool(te) and bool(truncated[e, s]) == bool(tr)
            assert bool(infos.action_clipped[e, s]) == bool(info.action_clipped)
        for x, y in zip(jax.tree.leaves(jax.tree.map(lambda a: a[e], final)),
                        jax.tree.leaves(state)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-4)
    done = np.asarray(terminated | truncated)
    for e in range(episodes):  # after the end, nothing moves
        end = int(np.argmax(done[e])) if done[e].any() else steps - 1
        assert int(final.steps[e]) == end + 1 or not done[e].any()
        assert np.all(np.asarray(rewards[e, end + 1 :]) == 0)
    assert bool(done[1, 3])
    # rewards sum to the final oracle score
    np.testing.assert_allclose(np.asarray(rewards).sum(1), final.score, atol=1e-5)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(-2, 5), st.floats(-5.0, 15.0), st.booleans()),
                min_size=1, max_size=12))
def test_the_dose_never_exceeds_the_budget(moves):
    # a budget of about three 5 µs frames over the field, so random sequences run out
    world = tiny_world("BaTiO3", "medium", budget_e_per_A2=6000.0)
    state, _ = reset(jax.random.key(0), world, "search")
    budget = float(world.budget_e_per_A2)
    for i, (tile, dwell, stop) in enumerate(moves):
        before = float(state.spent_e_per_A2)
        state, obs, reward, terminated, truncated, info = step(
            jax.random.key(i + 1), state, Action(tile, dwell, stop and i % 3 == 2), world)
        spent = float(state.spent_e_per_A2)
        assert before <= spent <= budget
        assert float(jnp.sum(state.tile_dose)) / world.n_tiles <= budget * (1 + 1e-5)
        assert 0.0 <= float(obs.dose_fraction) <= 1.0
        assert float(info.dwell_us) <= float(world.max_dwell_us) * (1 + 1e-6)
        if bool(info.dwell_truncated):
            assert bool(terminated) and spent == budget
        if bool(state.done):
            break


def test_an_episode_ends_when_the_budget_is_spent():
    world = tiny_world("BaTiO3", "medium", budget_e_per_A2=6000.0)
    state, _ = reset(jax.random.key(0), world, "census")
    rate = float(world.dose_per_us)
    state, obs, _, terminated, _, info = step(jax.random.key(1), state, Action(0, 10.0), world)
    assert not bool(terminated) and not bool(info.dwell_truncated)
    np.testing.assert_allclose(info.dose_e_per_A2, 10.0 * rate, rtol=1e-6)
    np.testing.assert_allclose(state.spent_e_per_A2, 10.0 * rate / 4, rtol=1e-6)
    state, obs, _, terminated, _, info = step(jax.random.key(2), state, Action(1, 10.0), world)
    assert bool(terminated) and bool(info.dwell_truncated)
    assert float(state.spent_e_per_A2) == 6000.0 and float(obs.dose_fraction) == 1.0
    np.testing.assert_allclose(info.dwell_us, (6000.0 * 4 / rate) - 10.0, rtol=1e-5)
    # a finished episode does not change
    after, _, reward, terminated, _, _ = step(jax.random.key(3), state, Action(2, 5.0), world)
    assert _equal(after, state) and float(reward) == 0.0 and bool(terminated)


def test_damage_happens_only_where_dose_was_spent():
    # strong beam and low displacement thresholds so that O atoms are knocked out
    world = tiny_world("SrTiO3", "easy", current_pA=200.0, threshold_scale=0.35,
                       budget_e_per_A2=1e7)
    state, _ = reset(jax.random.key(0), world, "census")
    for i, (tile, dwell) in enumerate([(1, 10.0), (1, 10.0), (2, 10.0)]):
        state, obs, *_ , info = step(jax.random.key(i + 1), state, Action(tile, dwell), world)
        assert float(info.displaced) > 0
    changed = np.asarray(state.counts) != np.asarray(world.specimen.counts)
    assert changed.sum() > 0
    dosed = np.asarray(state.site_dose) > 0
    assert np.all(dosed[changed])  # atoms were lost only from sites that received dose
    tiles = np.asarray(world.truth.site_tile)[changed]
    assert set(tiles) <= {1, 2}  # no drift at "easy": only the imaged tiles
    assert np.all(np.asarray(state.tile_dose)[[0, 3]] == 0)
    # only light atoms (O, Ti at these thresholds) are displaced; Sr never is
    z = np.asarray(world.specimen.atomic_numbers)[changed]
    assert set(z) <= {8, 22}
    # atoms are only ever lost
    lost = np.asarray(world.specimen.counts - state.counts).sum()
    assert lost > 0 and np.all(np.asarray(state.counts) <= np.asarray(world.specimen.counts))


def test_out_of_range_actions_are_clipped_and_flagged(world):
    state, _ = reset(jax.random.key(0), world, "phase")
    cases = [(Action(7, 1.0), 3, 1.0), (Action(-4, 1.0), 0, 1.0), (Action(1, -2.0), 1, 0.0),
             (Action(2, 50.0), 2, 10.0), (Action(2, jnp.nan), 2, 0.0)]
    for action, tile, dwell in cases:
        _, obs, _, _, _, info = step(jax.random.key(1), state, action, world)
        assert bool(info.action_clipped) and int(info.tile) == tile
        np.testing.assert_allclose(info.dwell_us, dwell, rtol=1e-6)
        assert int(obs.tile) == (tile if dwell > 0 else -1)
    _, _, _, _, _, info = step(jax.random.key(1), state, Action(3, 4.0), world)
    assert not bool(info.action_clipped)


def test_stop_ends_the_episode_without_imaging(world):
    state, _ = reset(jax.random.key(0), world, "particles")
    state, obs, reward, terminated, truncated, info = step(
        jax.random.key(1), state, Action(0, 5.0, True), world)
    assert bool(terminated) and not bool(truncated)
    assert float(state.spent_e_per_A2) == 0.0 and int(obs.tile) == -1 and float(reward) == 0.0


def test_episodes_are_truncated_after_max_steps(world):
    state, _ = reset(jax.random.key(0), world, "census")
    for i in range(world.max_steps):
        state, _, _, terminated, truncated, _ = step(jax.random.key(i), state, Action(i % 4, 0.0),
                                                     world)
    assert bool(truncated) and not bool(terminated) and int(state.steps) == world.max_steps


def test_reward_is_the_oracle_score_gain_and_sums_to_the_final_score():
    world = tiny_world("Nanoparticles", "easy")
    state, _ = reset(jax.random.key(0), world, "particles")
    total = 0.0
    for i, tile in enumerate(range(world.n_tiles)):
        state, _, reward, *_ = step(jax.random.key(i), state, Action(tile, 10.0), world)
        total += float(reward)
    # 10 µs at 20 pA is 15 900 e⁻/Å² per tile, above the easy resolve dose: all read
    np.testing.assert_allclose(total, float(state.score), atol=1e-6)
    np.testing.assert_allclose(state.score, 1.0, atol=1e-6)


def test_bad_inputs_are_rejected(world):
    state, _ = reset(jax.random.key(0), world)
    with pytest.raises(ValueError, match="task must be one of"):
        reset(jax.random.key(0), world, "survey")
    with pytest.raises(ValueError, match="world must be a stemjax.worlds.stemgym.World"):
        reset(jax.random.key(0), object())
    with pytest.raises(ValueError, match="action an Action"):
        step(jax.random.key(0), state, {"tile": 0}, world)
    shorter = jax.tree.map(lambda a: a[:2] if a.ndim == 1 and a.shape[0] == 4 else a, state)
    with pytest.raises(ValueError, match="state does not belong to this world"):
        step(jax.random.key(0), shorter, Action(0, 1.0), world)
