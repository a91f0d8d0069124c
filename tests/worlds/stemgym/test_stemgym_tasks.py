"""STEMGym task scores: in [0, 1], 1 for a perfect report of the whole field, 0 for an empty
one, credit only where the agent looked, and clear errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.worlds import stemgym

from .conftest import default_world, tiny_world

scores = stemgym.task_scores


@pytest.mark.parametrize("material", stemgym.MATERIALS)
def test_perfect_report_scores_one_and_empty_report_zero(material):
    for world in (tiny_world(material, "easy"), tiny_world(material, "hard", seed=1)):
        everything = jnp.ones(world.n_tiles, bool)
        perfect = stemgym.ground_truth_report(world, everything)
        np.testing.assert_allclose(scores(world, perfect, everything), 1.0, atol=1e-6)
        np.testing.assert_array_equal(scores(world, stemgym.empty_report(world)), 0.0)
        # analysing tiles without reporting anything earns nothing where there is something
        nothing = eqx.tree_at(lambda r: r.analysed, stemgym.empty_report(world), everything)
        got = np.asarray(scores(world, nothing))
        assert got[3] == 0.0 and 0.0 <= got.min() and got.max() <= 1.0


def test_default_world_scores_and_oracle_grows_with_what_was_seen():
    world = default_world()
    rng = np.random.default_rng(0)
    order = rng.permutation(world.n_tiles)
    previous = np.zeros(4)
    for seen in (0, 8, 24, 48, 64):
        mask = np.zeros(world.n_tiles, bool)
        mask[order[:seen]] = True
        got = np.asarray(scores(world, stemgym.ground_truth_report(world, mask), mask))
        assert np.all(got >= previous - 1e-6) and np.all((0 <= got) & (got <= 1))
        previous = got
    np.testing.assert_allclose(previous, 1.0, atol=1e-6)
    # half the field seen: the phase score is about half, not the phase-0 area fraction
    half = np.arange(world.n_tiles) < 32
    phase = float(stemgym.task_score("phase", world, stemgym.ground_truth_report(world, half)))
    assert 0.3 < phase < 0.7


def test_credit_needs_both_analysis_and_observation(world):
    everything = jnp.ones(world.n_tiles, bool)
    perfect = stemgym.ground_truth_report(world, everything)
    np.testing.assert_array_equal(scores(world, perfect, jnp.zeros(world.n_tiles, bool)), 0.0)
    one = jnp.arange(world.n_tiles) == 0
    assert np.all(np.asarray(scores(world, perfect, one)) < 1.0)


def _random_report(world, rng):
    t, (p, _), n_p = world.n_tiles, world.tile_shape, world.n_discs
    lower, size = np.asarray(world.field_lower_A), world.tile_size_A * world.tiles
    return stemgym.Report(
        analysed=jnp.asarray(rng.random(t) < 0.7),
        defect_counts=jnp.asarray(rng.poisson(3.0, (t, 2)).astype(np.float32)),
        phase_map=jnp.asarray(rng.integers(0, 2, (t, p, p)), jnp.int32),
        targets_found=jnp.asarray(rng.poisson(2.0, t).astype(np.float32)),
        particles=jnp.asarray(np.column_stack([lower + rng.random((n_p, 2)) * size,
                                               rng.random(n_p) * 5]).astype(np.float32)),
        particles_mask=jnp.asarray(rng.random(n_p) < 0.8),
    )


@pytest.mark.parametrize("material", stemgym.MATERIALS)
def test_any_report_scores_in_the_unit_interval(material):
    world = tiny_world(material, "medium")
    rng = np.random.default_rng(list(stemgym.MATERIALS).index(material))
    for _ in range(5):
        report = _random_report(world, rng)
        got = np.asarray(scores(world, report, jnp.asarray(rng.random(world.n_tiles) < 0.8)))
        assert np.all((0.0 <= got) & (got <= 1.0)), got


def test_scores_match_their_definitions_on_a_hand_made_case():
    world = default_world()
    truth = np.asarray(stemgym.tile_defect_counts(world))
    everything = jnp.ones(world.n_tiles, bool)
    report = stemgym.ground_truth_report(world, everything)
    # census: one extra vacancy in tile 0 costs 1 / (total defects)
    plus = eqx.tree_at(lambda r: r.defect_counts, report, report.defect_counts.at[0, 0].add(1.0))
    np.testing.assert_allclose(stemgym.task_score("census", world, plus), 1 - 1 / truth.sum(),
                               rtol=1e-6)
    # search: reporting double the targets gives F1 = 2T / (2T + T) = 2/3
    double = eqx.tree_at(lambda r: r.targets_found, report, 2.0 * report.targets_found)
    np.testing.assert_allclose(stemgym.task_score("search", world, double), 2 / 3, rtol=1e-6)
    # particles: every radius 10 % too large earns 0.9; a duplicate of each halves the score
    grown = eqx.tree_at(lambda r: r.particles, report, report.particles * jnp.array([1, 1, 1.1]))
    np.testing.assert_allclose(stemgym.task_score("particles", world, grown), 0.9, rtol=1e-5)
    # phase: everything labelled 0 is right on phase 0 only: balanced accuracy 0.5
    zeros = eqx.tree_at(lambda r: r.phase_map, report, jnp.zeros_like(report.phase_map))
    np.testing.assert_allclose(stemgym.task_score("phase", world, zeros), 0.5, rtol=1e-6)
    assert stemgym.task_score(2, world, report) == stemgym.task_score("search", world, report)


def test_oracle_reads_damaged_atom_types(world):
    everything = jnp.ones(world.n_tiles, bool)
    types = np.asarray(world.truth.atom_types).copy()
    pristine = np.nonzero(np.asarray(world.truth.present) & (types == 0)
                          & (np.asarray(world.truth.site_tile) >= 0))[0]
    types[pristine[:3]] = 1  # three beam-made vacancies
    report = stemgym.ground_truth_report(world, everything, jnp.asarray(types))
    extra = np.asarray(report.defect_counts).sum() - np.asarray(
        stemgym.tile_defect_counts(world)).sum()
    assert extra == 3
    assert float(stemgym.task_score("census", world, report)) < 1.0


def test_scores_vmap_over_reports(world):
    masks = jnp.asarray(np.random.default_rng(1).random((6, world.n_tiles)) < 0.5)
    reports = jax.vmap(lambda m: stemgym.ground_truth_report(world, m))(masks)
    batched = jax.vmap(lambda r, m: stemgym.task_scores(world, r, m))(reports, masks)
    single = np.stack([scores(world, stemgym.ground_truth_report(world, m), m) for m in masks])
    np.testing.assert_allclose(batched, single, rtol=1e-6)


def test_bad_task_or_report_is_rejected_with_a_clear_message(world):
    report = stemgym.empty_report(world)
    with pytest.raises(ValueError, match="task must be one of"):
        stemgym.task_score("counting", world, report)
    with pytest.raises(ValueError, match=r"integer in \[0, 3\]"):
        stemgym.task_score(4, world, report)
    wrong = eqx.tree_at(lambda r: r.defect_counts, report, jnp.zeros((world.n_tiles, 3)))
    with pytest.raises(ValueError, match=r"report.defect_counts must have shape \(4, 2\)"):
        stemgym.task_score("census", world, wrong)
    nan = eqx.tree_at(lambda r: r.targets_found, report, jnp.full(world.n_tiles, jnp.nan))
    with pytest.raises(ValueError, match="report.targets_found must be finite"):
        stemgym.task_score("search", world, nan)
    with pytest.raises(ValueError, match=r"observed must have shape \(4,\)"):
        stemgym.task_score("census", world, report, jnp.ones(5, bool))
    with pytest.raises(ValueError, match=r"observed_mask must have shape \(4,\)"):
        stemgym.ground_truth_report(world, jnp.ones(3, bool))
