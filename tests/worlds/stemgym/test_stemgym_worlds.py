"""STEMGym worlds: the paper's settings, ground truth of the documented shapes, one shape per
size, and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics import nanoparticle_on_support
from stemjax.physics.crystals import FCC_LATTICE_PARAMETERS
from stemjax.worlds import stemgym
from stemjax.worlds.stemgym import worlds as worlds_module

from .conftest import default_world, tiny_world


@pytest.mark.parametrize("material", stemgym.MATERIALS)
def test_ground_truth_has_the_documented_shapes_and_meaning(material):
    world = tiny_world(material, "easy")
    size = stemgym.SIZES["tiny"]
    n, h = size.capacity, size.tiles * size.tile_px
    t = world.truth
    assert t.atom_xy.shape == (n, 2) and t.atom_xy.dtype == jnp.float32
    assert t.atom_types.shape == (n,) and t.atom_types.dtype == jnp.int32
    assert t.defect_mask.shape == t.present.shape == t.site_tile.shape == (n,)
    assert t.defect_mask.dtype == t.present.dtype == jnp.bool_
    assert t.phase_map.shape == (h, h) and t.phase_map.dtype == jnp.int32
    assert t.valid_region.shape == (h, h) and t.valid_region.dtype == jnp.bool_
    assert t.discs.shape == (size.disc_grid**2, 3)
    types, present = np.asarray(t.atom_types), np.asarray(t.present)
    assert set(np.unique(types[present])) <= {0, 1, 2}
    np.testing.assert_array_equal(t.defect_mask, present & (types != 0))
    np.testing.assert_array_equal(t.defect_mask, world.specimen.defect_mask)
    assert bool(t.valid_region.all())  # the specimen extends beyond the field
    # site_tile agrees with World.tile_of, and only present sites inside the field have one
    expected = np.where(present, np.asarray(world.tile_of(t.atom_xy)), -1)
    np.testing.assert_array_equal(t.site_tile, expected)
    # phase_map is 1 exactly inside the discs
    xy = np.asarray(world.field.positions()).reshape(-1, 2)
    discs = np.asarray(t.discs)
    inside = ((xy[:, None] - discs[None, :, :2]) ** 2).sum(-1) < discs[None, :, 2] ** 2
    np.testing.assert_array_equal(t.phase_map.ravel(), inside.any(1))
    assert int(t.target_type) in (1, 2) and (discs[:, 2] > 0).sum() >= 1


def test_worlds_use_the_paper_imaging_settings(world):
    probe = world.imaging.probe
    assert probe.energy_kev == 200.0 and probe.semiangle_mrad == 21.0
    assert float(world.imaging.detector.inner_mrad) == 68.0
    assert float(world.imaging.detector.outer_mrad) == 200.0
    assert world.imaging.calibration is not None  # frozen-phonon multislice calibration
    assert world.pixel_A < float(jax.numpy.asarray(0.0251 / (4 * 0.021)))  # Nyquist
    assert world.field.shape == (32, 32) and world.tile_shape == (16, 16)
    assert world.n_tiles == 4 and world.max_steps == 16
    # dose per µs = I·τ/e / step²: 20 pA for 1 µs is 124.83 e⁻ per position
    np.testing.assert_allclose(world.dose_per_us, 20 * 6.2415091 / 0.28**2, rtol=1e-6)


def test_all_worlds_of_a_size_share_shapes_and_stack():
    worlds = [tiny_world(m, d) for m in stemgym.MATERIALS for d in ("easy", "hard")]
    structures = {jax.tree.structure(w) for w in worlds}
    assert len(structures) == 1
    shapes = {tuple(np.shape(x) for x in jax.tree.leaves(w)) for w in worlds}
    assert len(shapes) == 1
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *worlds)
    assert stacked.material.shape == (len(worlds),)
    assert [w.material_name for w in worlds[::2]] == list(stemgym.MATERIALS)


def test_a_key_fixes_the_world_and_difficulty_changes_the_settings():
    a = tiny_world("GaN", "medium", seed=3)
    b = stemgym.make_world(jax.random.key(3), "GaN", "medium", "tiny")
    same = [np.array_equal(np.asarray(x, float), np.asarray(y, float), equal_nan=True)
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    assert all(same)  # (the calibration table holds NaN rows for elements it lacks)
    easy, hard = tiny_world("GaN", "easy"), tiny_world("GaN", "hard")
    assert float(hard.read_noise) > float(easy.read_noise)
    assert float(hard.drift_A_per_s) > float(easy.drift_A_per_s) == 0.0
    present = np.asarray(easy.specimen.present)
    assert np.all(np.asarray(hard.specimen.displacement_threshold_ev)[present]
                  < np.asarray(easy.specimen.displacement_threshold_ev)[present])
    assert easy.difficulty_name == "easy" and hard.difficulty_name == "hard"


def test_default_worlds_hold_defects_of_both_kinds_and_several_discs():
    world = default_world()
    assert world.n_tiles == 64 and world.tile_shape == (32, 32)
    counts = np.asarray(stemgym.tile_defect_counts(world)).sum(0)
    assert counts[0] >= 5 and counts[1] >= 5
    assert int((np.asarray(world.truth.discs)[:, 2] > 0).sum()) >= 3
    assert world.tile_sites.shape == (64, stemgym.SIZES["default"].sites_per_tile)


def test_tile_site_tables_list_every_site_near_the_tile(world):
    n = world.specimen.capacity
    xy = np.asarray(world.specimen.atom_xy)
    present = np.asarray(world.specimen.present)
    origins = np.asarray(world.tile_origins()) - 0.5 * world.pixel_A
    for t in range(world.n_tiles):
        pad = worlds_module.PAD_A
        lo, hi = origins[t] - pad, origins[t] + world.tile_size_A + pad
        near = set(np.nonzero(present & np.all((xy >= lo) & (xy < hi), 1))[0])
        listed = np.asarray(world.tile_sites[t])
        assert set(listed[listed < n]) == near


def test_particle_columns_are_counted_like_the_library():
    a = FCC_LATTICE_PARAMETERS["Au"]
    spec = nanoparticle_on_support(jax.random.key(0), "Au", radius=9.0, cell=(30.0, 30.0))
    particle = np.asarray(spec.phases) == 1
    offsets = np.asarray(spec.atom_xy)[particle] - 15.0
    counts = stemgym.fcc_column_counts(offsets, a, 9.0)
    np.testing.assert_array_equal(counts, np.asarray(spec.counts)[particle])
    smaller = np.asarray(stemgym.fcc_column_counts(offsets, a, jnp.array([9.0, 6.0, 0.5])))
    assert smaller.shape == (3, particle.sum())
    assert np.all(smaller[1] <= smaller[0]) and smaller[2].sum() == 1  # only the centre atom


def test_nanoparticle_worlds_put_the_particles_where_the_phase_map_says(world):
    w = tiny_world("Nanoparticles", "easy")
    t = w.truth
    au = np.asarray(w.specimen.atomic_numbers) == 79
    on = np.asarray(t.present) & (np.asarray(w.specimen.phases) == 1)
    assert on.sum() > 0 and np.all(au[on] | (np.asarray(w.specimen.atomic_numbers)[on] == 46))
    discs = np.asarray(t.discs)
    xy = np.asarray(t.atom_xy)[on]
    distance2 = ((xy[:, None] - discs[None, :, :2]) ** 2).sum(-1).min(1)
    assert np.all(distance2 <= discs[:, 2].max() ** 2 + 1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"material": "MoS2"}, "material must be one of"),
        ({"difficulty": "extreme"}, "difficulty must be one of"),
        ({"size": "huge"}, "size must be one of"),
        ({"budget_e_per_A2": -1.0}, "budget_e_per_A2 must be > 0"),
        ({"defect_fraction": 0.9}, r"defect_fraction must lie in \[0.0, 0.5\]"),
        ({"threshold_scale": 0.0}, r"threshold_scale must lie in \(0.0, 1.0\]"),
        ({"current": 1.0}, "unknown world setting"),
        ({"max_dwell_us": "long"}, "max_dwell_us must be a real number"),
    ],
)
def test_bad_settings_are_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        stemgym.world_settings(**kwargs)


def test_settings_can_be_overridden():
    s = stemgym.world_settings("SiGe", "hard", "tiny", budget_e_per_A2=100.0, current_pA=5)
    assert s.budget_e_per_A2 == 100.0 and s.current_pA == 5.0 and s.read_noise == 3.0
