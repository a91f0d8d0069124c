"""Simulated worlds: drawn from a key, stackable under vmap, scalarizers where the physics puts
them, and patches that predict the targets of a world never seen."""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.worlds import simulated
from stemjax.worlds import (
    DomainWorldConfig,
    ParticleWorldConfig,
    World,
    candidate_centres,
    domain_ground_truth,
    domain_world,
    particle_ground_truth,
    particle_world,
)

SMALL_DOMAINS = DomainWorldConfig(
    image_shape=(24, 30), patch_size=8, n_seeds=4, n_domains=(1, 3), domain_radius_A=(8.0, 16.0)
)
SMALL_PARTICLES = ParticleWorldConfig(image_shape=(24, 30), patch_size=8, n_seeds=4, grid=(2, 2))
KINDS = {
    "domains": (domain_world, domain_ground_truth, SMALL_DOMAINS),
    "particles": (particle_world, particle_ground_truth, SMALL_PARTICLES),
}
# Every test uses the default (PFM-geometry) configurations, so each kind compiles once
# unbatched and once under vmap; other configurations are checked through eval_shape.


@functools.cache
def _default(kind: str, seed: int):
    """World and ground truth of the default configuration, cached."""
    make, truth, _ = KINDS[kind]
    key = jax.random.key(seed)
    return make(key), truth(key)


def _leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_key_fixes_the_world_and_other_keys_change_it(kind):
    make, truth, _ = KINDS[kind]
    world, hidden = _default(kind, 0)
    assert _leaves_equal(world, make(jax.random.key(0)))
    assert _leaves_equal(hidden, truth(jax.random.key(0)))
    other = _default(kind, 1)[0]
    assert not np.array_equal(world.targets, other.targets)
    assert not np.array_equal(world.image, other.image)
    assert not np.array_equal(world.seeds, other.seeds)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_default_worlds_have_the_pfm_geometry(kind):
    world, _ = _default(kind, 0)
    centres = candidate_centres((50, 50), 16)
    assert isinstance(world, World) and world.name == kind and world.size == 1225
    assert world.inputs.shape == (1225, 16, 16) and world.image.shape == (50, 50)
    assert world.inputs.dtype == jnp.float32 and world.seeds.shape == (10,)
    np.testing.assert_array_equal(world.positions, centres)
    np.testing.assert_array_equal(world.costs, 1.0)
    assert float(world.image.min()) == 0.0 and float(world.image.max()) == 1.0
    # targets on the fixed physical scale [0, 1], not stretched per world
    assert 0.0 <= float(world.targets.min()) and float(world.targets.max()) <= 1.0
    assert float(world.targets.max()) > {"domains": 0.9, "particles": 0.3}[kind]
    r, c = centres[400]
    np.testing.assert_array_equal(world.inputs[400], world.image[r - 8 : r + 8, c - 8 : c + 8])
    seeds = np.asarray(world.seeds)
    assert len(set(seeds.tolist())) == 10 and seeds.min() >= 0 and seeds.max() < 1225


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_shapes_follow_the_config(kind):
    make, truth, config = KINDS[kind]
    world = eqx.filter_eval_shape(lambda k: make(k, config), jax.random.key(0))
    n = 17 * 23
    assert world.inputs.shape == (n, 8, 8) and world.targets.shape == (n,)
    assert world.positions.shape == (n, 2) and world.costs.shape == (n,)
    assert world.seeds.shape == (4,) and world.image.shape == (24, 30)
    hidden = eqx.filter_eval_shape(lambda k: truth(k, config), jax.random.key(0))
    assert hidden.scalarizer.shape == (24, 30)


def test_vmap_over_keys_equals_a_loop():
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    stacked = jax.vmap(domain_world)(keys)
    assert stacked.inputs.shape == (2, 1225, 16, 16) and stacked.name == "domains"
    for i in range(2):
        one = _default("domains", i)[0]
        np.testing.assert_allclose(stacked.targets[i], one.targets, atol=1e-5)
        np.testing.assert_array_equal(stacked.seeds[i], one.seeds)
        # batched rendering may round differently; a Poisson draw at a rounding edge then
        # differs by one electron, so allow a few such pixels
        for batched, single in ((stacked.image[i], one.image), (stacked.inputs[i], one.inputs)):
            differ = ~np.isclose(batched, single, atol=1e-5)
            assert differ.mean() < 0.01
            np.testing.assert_allclose(batched, single, atol=0.02)
    # particle worlds stack the same way (shapes only: a second compilation is slow on CPU)
    particles = eqx.filter_eval_shape(jax.vmap(particle_world), keys)
    assert particles.inputs.shape == (2, 1225, 16, 16) and particles.seeds.shape == (2, 10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_domain_scalarizer_peaks_on_the_walls_of_the_phase_map(seed):
    world, truth = _default("domains", seed)
    phase = np.asarray(truth.phase_map)
    assert 0 < phase.mean() < 1  # both phases in view
    # wall distance: ½ px next to a pixel of the other phase, recomputed by brute force
    rows, cols = np.indices(phase.shape)
    other = phase[None, None] != phase[:, :, None, None]
    d = np.sqrt((rows[:, :, None, None] - rows) ** 2 + (cols[:, :, None, None] - cols) ** 2)
    expected = np.where(other, d, np.inf).min(axis=(2, 3)) - 0.5
    np.testing.assert_allclose(truth.wall_distance_px, expected, atol=1e-4)

    centres = np.asarray(world.positions).astype(int)
    distance = expected[centres[:, 0], centres[:, 1]]
    targets = np.asarray(world.targets)
    assert targets[distance <= 1.0].mean() > 0.75
    assert targets[distance >= 6.0].mean() < 0.1
    assert distance[np.argmax(targets)] <= 1.5
    # Ba domains scatter more than the SrTiO3 host
    image = np.asarray(world.image)
    assert image[phase == 1].mean() > image[phase == 0].mean() + 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_particle_scalarizer_is_strongest_in_the_narrowest_gaps(seed):
    world, truth = _default("particles", seed)
    centres, radii, gaps = (np.asarray(a) for a in (truth.centres, truth.radii, truth.gaps))
    field = np.asarray(truth.scalarizer)
    n = len(radii)
    assert np.all(gaps[~np.eye(n, dtype=bool)] >= 0.5 - 1e-5)  # min_gap_A = 5 Å = 0.5 px

    # the middle of each neighbouring gap inside the field: wider gap, weaker field
    middles, widths = [], []
    for i in range(n):
        for j in range(i + 1, n):
            if gaps[i, j] > 4.0:
                continue
            unit = (centres[j] - centres[i]) / np.linalg.norm(centres[j] - centres[i])
            middle = centres[i] + unit * (radii[i] + gaps[i, j] / 2)
            if np.all((middle >= 0) & (middle <= 49)):
                middles.append(np.round(middle).astype(int))
                widths.append(gaps[i, j])
    assert len(widths) >= 4
    at_middle = np.array([field[r, c] for r, c in middles])
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    spearman = np.corrcoef(rank(np.array(widths)), rank(at_middle))[0, 1]
    assert spearman < -0.6

    # the hottest pixel lies on the line between two particles, in one of the narrowest gaps
    peak = np.array(np.unravel_index(np.argmax(field), field.shape))
    surface = np.linalg.norm(peak - centres, axis=1) - radii
    two = np.argsort(surface)[:2]
    assert gaps[two[0], two[1]] <= np.sort(np.array(widths))[1] + 1e-4
    assert surface[two].sum() <= gaps[two[0], two[1]] + 1.0

    # no target noise by default: targets are the field at the candidates
    positions = np.asarray(world.positions).astype(int)
    np.testing.assert_allclose(world.targets, field[positions[:, 0], positions[:, 1]],
                               atol=1e-6)
    assert 0.0 < field.min() and field.max() <= 1.0
    # particles are bright
    image = np.asarray(world.image)
    rows, cols = np.indices(image.shape)
    inside = np.any(np.hypot(rows[..., None] - centres[:, 0], cols[..., None] - centres[:, 1])
                    < radii - 1.0, axis=-1)
    assert image[inside].mean() > image[~inside].mean() + 0.3


def _radial_features(patches: np.ndarray) -> np.ndarray:
    """Mean and spread of each patch on rings about its centre (rotation invariant)."""
    p = patches.shape[-1]
    rows, cols = np.indices((p, p))
    ring = np.hypot(rows - (p - 1) / 2, cols - (p - 1) / 2).astype(int)
    columns = []
    for r in range(p // 2):
        values = patches[:, ring == r]
        columns += [values.mean(1), values.std(1)]
    return np.stack(columns, 1)


@pytest.mark.parametrize("kind, ratio", [("domains", 0.5), ("particles", 0.8)])
def test_patches_predict_the_targets_of_an_unseen_world(kind, ratio):
    """k-nearest neighbours on patch ring statistics, trained on two worlds, beat the
    training mean on a third world (mean squared error)."""
    train = [_default(kind, s)[0] for s in (0, 1)]
    test = _default(kind, 2)[0]
    x_train = np.concatenate([_radial_features(np.asarray(w.inputs)) for w in train])
    y_train = np.concatenate([np.asarray(w.targets) for w in train])
    x_test, y_test = _radial_features(np.asarray(test.inputs)), np.asarray(test.targets)
    d2 = (x_test**2).sum(1)[:, None] - 2 * x_test @ x_train.T + (x_train**2).sum(1)[None]
    predicted = y_train[np.argsort(d2, axis=1)[:, :10]].mean(1)
    mse = np.mean((predicted - y_test) ** 2)
    constant = np.mean((y_train.mean() - y_test) ** 2)
    assert mse < ratio * constant


def test_shot_noise_is_poisson():
    """The loop-free sampler of the worlds' images against the Poisson law."""
    means = np.array([0.0, 0.4, 4.0, 9.99, 10.0, 30.0, 2000.0])
    n = 50_000
    counts = np.asarray(
        jax.jit(simulated._shot_noise)(jax.random.key(5), jnp.asarray(np.repeat(means, n)))
    ).reshape(len(means), n)
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    for lam, c in zip(means, counts):
        assert abs(c.mean() - lam) <= 5 * np.sqrt(max(lam, 1e-12) / n)
        if lam > 0:
            assert abs(c.var() / lam - 1) < 0.05
        else:
            assert np.all(c == 0)
    for lam, c in zip(means[[2, 5]], counts[[2, 5]]):
        k = np.arange(int(lam + 8 * np.sqrt(lam)))
        log_pmf = k * np.log(lam) - lam - np.array([math.lgamma(v + 1) for v in k])
        expected = n * np.exp(log_pmf)
        observed = np.bincount(c.astype(int), minlength=len(k))[: len(k)]
        keep = expected > 5
        chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
        dof = keep.sum() - 1
        assert chi2 < dof + 5 * np.sqrt(2 * dof)


def test_keys_must_be_single():
    with pytest.raises(ValueError, match=r"key must be a single PRNG key.*shape \(2,\)"):
        domain_world(jax.random.split(jax.random.key(0), 2), SMALL_DOMAINS)
    with pytest.raises(ValueError, match="key must be a single PRNG key"):
        particle_world(jnp.zeros(3), SMALL_PARTICLES)


@pytest.mark.parametrize(
    "make, settings, message",
    [
        (DomainWorldConfig, {"image_shape": (50,)}, r"image_shape must be a tuple \(H, W\)"),
        (DomainWorldConfig, {"patch_size": 60}, r"patch_size must lie in \[1, 50\].*got 60"),
        (DomainWorldConfig, {"n_seeds": 0}, r"n_seeds must be an integer >= 1; got 0"),
        (DomainWorldConfig, {"n_seeds": 2000}, r"n_seeds must lie in \[1, 1225\].*got 2000"),
        (DomainWorldConfig, {"pixel_size_A": 0.0}, r"pixel_size_A must be > 0 Å.*0\.0"),
        (DomainWorldConfig, {"material": "PbTiO3"}, r"material must be one of .*'PbTiO3'"),
        (DomainWorldConfig, {"domain_a_element": "Xx"}, "domain_a_element"),
        (DomainWorldConfig, {"n_domains": (3, 2)}, r"n_domains must be .*1 <= low <= high"),
        (DomainWorldConfig, {"domain_radius_A": (5.0, -1.0)}, r"domain_radius_A must be"),
        (DomainWorldConfig, {"dose_e_per_A2": -1.0}, r"dose_e_per_A2 must be > 0 e⁻/Å²"),
        (DomainWorldConfig, {"target_noise": -0.1}, r"target_noise must be >= 0"),
        (ParticleWorldConfig, {"element": "Cu"}, r"element must be one of .*'Cu'"),
        (ParticleWorldConfig, {"grid": (1, 1)}, r"grid must be .*at least 2 particles"),
        (ParticleWorldConfig, {"jitter": 0.5}, r"jitter must lie in \[0, 0\.45\].*0\.5"),
        (ParticleWorldConfig, {"min_gap_A": 60.0}, r"min_gap_A must be smaller than .*50 Å"),
        (ParticleWorldConfig, {"gap_decay_A": 0.0}, r"gap_decay_A must be > 0 Å"),
    ],
)
def test_configs_reject_bad_settings(make, settings, message):
    with pytest.raises(ValueError, match=message):
        make(**settings)
