"""STEMGym agents: navigators, the five-mode planner, scored episodes (tiny worlds only)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax import models
from stemjax.worlds import stemgym
from stemjax.worlds.stemgym import agents
from stemjax.worlds.stemgym.agents import (
    GPUCB,
    MODES,
    Agent,
    Planner,
    PlannerUCB,
    RandomNavigator,
    RasterNavigator,
    TileAnalyst,
    budget_dwell_us,
    empty_analyst,
    oracle_analyst,
    run_episode,
    run_episodes,
    run_grid,
    stack_worlds,
)
from .conftest import tiny_world

NAVIGATORS = (RandomNavigator(), RasterNavigator(), GPUCB(), PlannerUCB())


def _midway_state(world, tiles=(1,)):
    """A state as if the given tiles had been imaged once at the budget dwell (synthetic: the
    navigators and the oracle read only the doses, the steps and the dose spent)."""
    state, _ = stemgym.reset(jax.random.key(0), world, "census")
    dose = float(budget_dwell_us(world) * world.dose_per_us)  # e⁻/Å² per tile
    tile_dose = state.tile_dose.at[jnp.asarray(tiles)].set(dose)
    spent = jnp.asarray(dose * len(tiles) / world.n_tiles, state.spent_e_per_A2.dtype)
    steps = jnp.asarray(len(tiles), jnp.int32)
    return eqx.tree_at(lambda s: (s.tile_dose, s.spent_e_per_A2, s.steps), state,
                       (tile_dose, spent, steps))  # fmt: skip


def test_navigators_return_valid_actions(world):
    state = _midway_state(world)
    report = oracle_analyst(state, world)
    act = jax.jit(lambda key: [nav(key, nav.init(world), state, world, report)
                               for nav in NAVIGATORS])  # fmt: skip
    for nav, (action, carry) in zip(NAVIGATORS, act(jax.random.key(1))):
        assert isinstance(action, stemgym.Action)
        assert action.tile.shape == () and action.tile.dtype == jnp.int32
        assert 0 <= int(action.tile) < world.n_tiles
        assert not bool(action.stop)
        np.testing.assert_allclose(float(action.dwell_us),
                                   float(world.budget_e_per_A2 / world.dose_per_us),
                                   rtol=1e-6)  # fmt: skip
        modes = range(len(MODES)) if isinstance(nav, PlannerUCB) else (-1,)
        assert int(nav.mode(carry)) in modes
    # a fixed dwell is passed through; bad settings are refused
    action, _ = RasterNavigator(dwell_us=1.5)(jax.random.key(0), (), state, world, report)
    assert float(action.dwell_us) == 1.5
    for bad in (dict(dwell_us=-1.0), dict(dwell_us="fast")):
        with pytest.raises(ValueError, match="dwell_us"):
            RasterNavigator(**bad)
    with pytest.raises(ValueError, match="beta"):
        GPUCB(beta=-0.5)
    with pytest.raises(ValueError, match="lengthscale_tiles"):
        GPUCB(lengthscale_tiles=0.0)


def test_gp_ucb_explores_unseen_tiles():
    world = tiny_world()
    state = _midway_state(world, tiles=(0,))
    report = oracle_analyst(state, world)
    # with nothing known but tile 0, a large beta goes to the farthest, most uncertain tile
    nav = GPUCB(beta=50.0)
    tile, carry = nav.choose(jax.random.key(0), nav.init(world), state, world, report)
    assert int(tile) == 3
    np.testing.assert_array_equal(carry.included, state.observed)
    post = nav.posterior(carry, state, report)
    assert post.mean.shape == post.variance.shape == (world.n_tiles,)
    assert float(post.variance[0]) < float(post.variance[3])  # the seen tile is known best


def test_gp_ucb_posterior_equals_the_library_masked_exact_gp():
    world = tiny_world("GaN", "easy")
    state = _midway_state(world, tiles=(0, 3))
    report = oracle_analyst(state, world)
    # the counts of tile 3 are stale: the report covers tile 0 only (constant liar at tile 3)
    stale = eqx.tree_at(lambda r: r.analysed, report, report.analysed.at[3].set(False))
    nav = GPUCB(lengthscale_tiles=1.2, noise_variance=0.05)
    for rep in (report, stale):
        carry = nav.include(nav.init(world), state.observed)
        post = nav.posterior(carry, state, rep)
        # the same model through stemjax.models: data at the observed tile centres
        credited = np.asarray(rep.analysed & state.observed)
        found = np.asarray(agents.defects_found(rep, state.observed))
        y = found / max(1.0, found.max())
        c = y[credited].mean() if credited.any() else 0.0
        y = np.where(credited, y, c)
        centres = agents.tile_centres(world)
        params = models.GPParams(nav.kernel(), noise=nav.noise_variance, mean=c)
        ref = models.predict(params, models.GPData(centres, y, np.asarray(state.observed)),
                             centres)  # fmt: skip
        np.testing.assert_allclose(post.mean, ref.mean, atol=2e-4)
        np.testing.assert_allclose(post.variance, ref.variance, atol=2e-4)


def test_raster_visits_every_tile_once_before_repeating():
    world = tiny_world()
    t = world.n_tiles
    dwell = 0.2 * float(budget_dwell_us(world))  # five rasters fit in the budget
    agent = Agent("raster", RasterNavigator(dwell_us=dwell), empty_analyst)
    episode = run_episode(jax.random.key(3), agent, world, steps=3 * t)
    tiles = np.asarray(episode.tiles)
    for sweep in range(3):
        assert sorted(tiles[sweep * t : (sweep + 1) * t]) == list(range(t))
    np.testing.assert_array_equal(tiles[:t], np.arange(t))  # row-major order
    assert bool(np.all(episode.valid))
    np.testing.assert_allclose(episode.dose_fraction[-1], 3 * 0.2, rtol=1e-5)


def test_planner_transitions_at_the_stated_thresholds():
    p = Planner()
    def tr(mode, cov=0.0, defects=0.0, left=1.0):
        return int(p.transition(mode, cov, defects, left))

    # SURVEY -> INVESTIGATE at coverage >= 15 %
    assert tr(0, cov=0.149) == 0 and tr(0, cov=0.15) == 1
    # INVESTIGATE -> CHARACTERISE at >= 2 defects found
    assert tr(1, cov=0.9, defects=1.99) == 1 and tr(1, defects=2.0) == 2
    # CHARACTERISE -> CENSUS at coverage >= 50 %
    assert tr(2, cov=0.499, defects=9) == 2 and tr(2, cov=0.5) == 3
    # CENSUS stays until the budget left is <= 20 %; any mode then terminates
    assert tr(3, cov=1.0, defects=9, left=0.201) == 3
    for mode in range(5):
        assert tr(mode, left=0.2) == 4
    assert tr(4, cov=0.0, left=0.9) == 4
    # one forward transition per step, in order
    assert tr(0, cov=0.9, defects=9, left=0.5) == 1
    assert tr(1, cov=0.9, defects=9, left=0.5) == 2
    # β per mode: SURVEY 3.0, INVESTIGATE 2.0, CHARACTERISE 0.5, CENSUS 1.0, TERMINATE 0.0
    assert MODES == ("survey", "investigate", "characterise", "census", "terminate")
    assert [float(p.beta(m)) for m in range(5)] == [3.0, 2.0, 0.5, 1.0, 0.0]
    with pytest.raises(ValueError, match="betas"):
        Planner(betas=(1.0, 2.0))
    with pytest.raises(ValueError, match="survey_coverage"):
        Planner(survey_coverage=1.5)


def test_planner_navigator_uses_the_beta_of_its_mode():
    world = tiny_world()
    state = _midway_state(world, tiles=(0,))  # coverage 25 %: SURVEY -> INVESTIGATE
    report = oracle_analyst(state, world)
    nav = PlannerUCB()
    for mode in range(5):
        key = jax.random.key(mode)
        carry = (jnp.asarray(mode, jnp.int32), nav.init(world)[1])
        tile, new = nav.choose(key, carry, state, world, report)
        expected_mode = 1 if mode == 0 else mode
        assert int(nav.mode(new)) == expected_mode
        fixed_nav = GPUCB(beta=Planner().betas[expected_mode])
        fixed, _ = fixed_nav.choose(key, fixed_nav.init(world), state, world, report)
        assert int(tile) == int(fixed)


# Shared episodes (each distinct agent and shape compiles once; the benchmark tests and the
# CLI test reuse these shapes: 2 tiny worlds, 3 episodes, one step per tile).
KEYS = jax.random.split(jax.random.key(7), 3)
RASTER_ORACLE = Agent("raster+oracle", RasterNavigator(), oracle_analyst)


def _planner_agent(world):
    half = 0.5 * float(budget_dwell_us(world))  # 8 steps spend the budget
    return Agent("planner+oracle", PlannerUCB(dwell_us=half), oracle_analyst)


@pytest.fixture(scope="module")
def raster_episodes():
    return run_episodes(KEYS, RASTER_ORACLE, tiny_world())


@pytest.fixture(scope="module")
def planner_episodes():
    world = tiny_world()
    return run_episodes(KEYS[:2], _planner_agent(world), world, steps=8)


def test_planner_episode_modes_follow_coverage_and_budget(planner_episodes):
    for modes in np.asarray(planner_episodes.modes):
        assert modes[0] == 0  # nothing seen at the first action
        assert np.all(np.diff(modes) >= 0)
        # budget left before action i is 1 - i/8: TERMINATE from i = 7 (12.5 % <= 20 %)
        assert modes[6] < 4 and modes[7] == 4
        assert modes[1] == 1  # coverage 25 % after the first step


def test_dec_auc_equals_a_hand_computation(raster_episodes):
    world = tiny_world()
    t = world.n_tiles
    episode = jax.tree.map(lambda a: a[0], raster_episodes)
    counts = np.asarray(stemgym.tile_defect_counts(world)).sum(axis=1)  # (T,)
    # census after k tiles of the raster: 1 - (true defects in unseen tiles) / (all)
    census = np.array([1.0 - counts[k:].sum() / counts.sum() for k in range(t + 1)])
    dose = np.arange(t + 1) / t
    np.testing.assert_allclose(episode.dose_fraction, dose, atol=1e-5)
    np.testing.assert_allclose(episode.scores[:, 0], census, atol=1e-5)
    hand = sum((dose[i + 1] - dose[i]) * (census[i] + census[i + 1]) / 2 for i in range(t))
    np.testing.assert_allclose(float(episode.dec_auc[0]), hand, atol=1e-5)
    # every task: the same trapezoid rule on its own scores
    s = np.asarray(episode.scores, float)
    trapezoid = ((dose[1:] - dose[:-1])[:, None] * (s[1:] + s[:-1]) / 2).sum(axis=0)
    np.testing.assert_allclose(episode.dec_auc, trapezoid, atol=1e-5)
    assert float(episode.coverage) == 1.0
    # scored every 2 steps: points at doses 0, 1/2, 1 only
    coarse = run_episodes(KEYS, RASTER_ORACLE, world, score_every=2)
    np.testing.assert_allclose(coarse.dose_fraction[0], [0.0, 0.5, 1.0], atol=1e-5)
    np.testing.assert_allclose(coarse.scores[0], episode.scores[::2], atol=1e-6)
    hand2 = 0.5 * (census[0] + census[2]) / 2 + 0.5 * (census[2] + census[4]) / 2
    np.testing.assert_allclose(float(coarse.dec_auc[0, 0]), hand2, atol=1e-5)
    with pytest.raises(ValueError, match="score_every"):
        run_episode(jax.random.key(5), RASTER_ORACLE, world, score_every=3)


def test_vmap_over_episodes_equals_a_loop_and_keys_decide(planner_episodes, raster_episodes):
    world = tiny_world()
    agent = _planner_agent(world)
    for i, k in enumerate(KEYS[:2]):
        one = run_episode(k, agent, world, steps=8)
        for name in ("tiles", "modes", "valid"):
            np.testing.assert_array_equal(getattr(planner_episodes, name)[i], getattr(one, name))
        for name in ("dose_fraction", "scores", "dec_auc", "dwell_us"):
            np.testing.assert_allclose(getattr(planner_episodes, name)[i], getattr(one, name),
                                       rtol=1e-5, atol=1e-6)  # fmt: skip
    again = run_episodes(KEYS[:2], agent, world, steps=8)
    for a, b in zip(jax.tree.leaves(planner_episodes), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)  # same key, same result, bit for bit
    # a grid of stacked worlds equals the worlds one by one
    worlds = [world, tiny_world("GaN", "easy")]
    grid = run_grid(jnp.stack([KEYS, KEYS]), RASTER_ORACLE, stack_worlds(worlds))
    np.testing.assert_allclose(grid.dec_auc[0], raster_episodes.dec_auc, rtol=1e-5, atol=1e-6)
    other = run_episodes(KEYS, RASTER_ORACLE, worlds[1])
    np.testing.assert_allclose(grid.dec_auc[1], other.dec_auc, rtol=1e-5, atol=1e-6)


def test_paired_keys_share_the_trajectory_of_analyst_blind_navigators():
    world = tiny_world()
    a = run_episodes(KEYS, Agent("random+oracle", RandomNavigator(), oracle_analyst), world)
    b = run_episodes(KEYS, Agent("random+empty", RandomNavigator(), empty_analyst), world)
    np.testing.assert_array_equal(a.tiles, b.tiles)
    np.testing.assert_array_equal(a.dose_fraction, b.dose_fraction)
    assert float(jnp.max(b.dec_auc)) == 0.0 and float(jnp.min(a.dec_auc[:, 0])) > 0.0
    assert len({tuple(t) for t in np.asarray(a.tiles).tolist()}) > 1  # keys decide the tiles


class _DoseCounter(eqx.Module):
    """A stand-in tile analyst whose counts follow each tile's dose, so re-imaged tiles
    change their features (it reads no frames, so the imaging compiles away in tests)."""

    def tile_features(self, frames, tile_dose, tiles, world):
        del frames
        return {"dose": tile_dose}

    def assemble(self, features, state, world):
        seen = state.observed
        found = jnp.clip(features["dose"] / world.budget_e_per_A2, 0.0, 1.0)
        counts = stemgym.tile_defect_counts(world) * found[:, None]  # more dose, more found
        report = stemgym.empty_report(world)
        return eqx.tree_at(lambda r: (r.analysed, r.defect_counts), report,
                           (seen, jnp.where(seen[:, None], counts, 0.0)))  # fmt: skip

    def __call__(self, state, world):
        tiles = jnp.arange(world.n_tiles, dtype=jnp.int32)
        return self.assemble(self.tile_features(state.frames, state.tile_dose, tiles, world),
                             state, world)  # fmt: skip


def test_tile_analysts_are_analysed_incrementally_with_the_same_reports():
    world = tiny_world()
    inner = _DoseCounter()
    tile_analyst = TileAnalyst(inner.tile_features, inner.assemble)
    plain = lambda state, w: inner(state, w)  # noqa: E731  (no tile protocol: full analysis)
    nav = RandomNavigator(dwell_us=0.3 * float(budget_dwell_us(world)))
    key = jax.random.key(2)
    incremental = run_episode(key, Agent("a", nav, tile_analyst), world, steps=8)
    full = run_episode(key, Agent("b", nav, plain), world, steps=8)
    np.testing.assert_array_equal(incremental.tiles, full.tiles)
    np.testing.assert_allclose(incremental.scores, full.scores, atol=1e-6)
    assert len(set(np.asarray(full.tiles).tolist())) < 8  # tiles were re-imaged
    assert len(set(np.asarray(full.scores[:, 0]).tolist())) > 2  # the reports changed


def test_bad_inputs_raise_value_errors():
    world = tiny_world()
    with pytest.raises(ValueError, match="navigator"):
        Agent("x", "raster", oracle_analyst)
    with pytest.raises(ValueError, match="analyst"):
        Agent("x", RasterNavigator(), 3)
    agent = Agent("x", RasterNavigator(), empty_analyst)
    with pytest.raises(ValueError, match="steps"):
        run_episode(jax.random.key(0), agent, world, steps=0)
    with pytest.raises(ValueError, match="world"):
        run_episode(jax.random.key(0), agent, "SrTiO3")
    with pytest.raises(ValueError, match="keys"):
        run_episodes(jax.random.key(0), agent, world)
    with pytest.raises(ValueError, match="stack_worlds|worlds must"):
        stack_worlds([world, "GaN"])
