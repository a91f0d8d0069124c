"""STEMGym analysts: the peak-finding baseline and the shipped U-Net ensemble."""

import functools
import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.worlds import stemgym
from stemjax.worlds.stemgym import Action, rollout, unet
from stemjax.worlds.stemgym.analysts import (
    DATA_DIR,
    PeakAnalyst,
    UNetAnalyst,
    blob_particles,
    cnn_analyst,
    count_peaks,
    load_unet_analyst,
    local_maxima,
    peak_analyst,
    target_type,
)
from stemjax.worlds.stemgym.worlds import SEARCH_TARGETS

_rollout = eqx.filter_jit(rollout)  # compiled once for all the worlds here (one size)


@functools.cache
def _world(material="GaN", difficulty="easy", seed=3):
    """A small (4 × 4 tiles of 32 px) world with room in the budget for 9500 e⁻/Å² a tile."""
    return stemgym.make_world(jax.random.key(seed), material, difficulty, "small",
                              budget_e_per_A2=1e4)  # fmt: skip


@functools.cache
def _episode(material="GaN", key=3, seen=None):
    """One raster at 6 µs (9500 e⁻/Å²) over the tiles in ``seen`` (all if None)."""
    world = _world(material)
    t = world.n_tiles
    dwell = np.full(t, 6.0) if seen is None else np.where(np.isin(np.arange(t), seen), 6.0, 0.0)
    actions = Action(jnp.arange(t), jnp.asarray(dwell), jnp.zeros(t, bool))
    final, _ = _rollout(jax.random.key(key), world, 0, actions)
    return world, final


def _partial_states():
    """Two episodes on the GaN world that saw tiles 0, 1, 3 and 6 (never tile 2)."""
    states = [_episode("GaN", k, (0, 1, 3, 6))[1] for k in (1, 2)]
    return _world("GaN"), states


def _assert_reports_equal(a, b, **kw):
    for name in ("analysed", "defect_counts", "phase_map", "targets_found", "particles",
                 "particles_mask"):  # fmt: skip
        np.testing.assert_allclose(np.asarray(getattr(a, name), float),
                                   np.asarray(getattr(b, name), float), err_msg=name, **kw)


ANALYSTS = {"peak": lambda: peak_analyst, "cnn": load_unet_analyst}


@pytest.mark.parametrize("name", ANALYSTS)
def test_reports_have_the_right_shapes_under_jit_and_vmap(name):
    analyst = ANALYSTS[name]()
    world, states = _partial_states()
    t, (p, _) = world.n_tiles, world.tile_shape
    batched = jax.tree.map(lambda *a: jnp.stack(a), *states)
    reports = jax.jit(jax.vmap(analyst, in_axes=(0, None)))(batched, world)
    assert reports.defect_counts.shape == (2, t, 2) and reports.phase_map.shape == (2, t, p, p)
    assert reports.targets_found.shape == (2, t)
    assert reports.particles.shape == (2, world.n_discs, 3)
    assert reports.phase_map.dtype == jnp.int32 and reports.analysed.dtype == bool
    for i, state in enumerate(states):
        report = analyst(state, world)
        _assert_reports_equal(jax.tree.map(lambda a: a[i], reports), report, atol=1e-5)
        scores = np.asarray(stemgym.task_scores(world, report, state.observed))
        assert np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize("name", ANALYSTS)
def test_analysts_never_read_the_ground_truth(name):
    analyst = ANALYSTS[name]()
    world, states = _partial_states()
    truth = world.truth
    fake_truth = eqx.tree_at(
        lambda g: (g.atom_xy, g.atom_types, g.phase_map, g.discs, g.target_type, g.site_tile),
        truth,
        (truth.atom_xy + 1.0, 2 - truth.atom_types, 1 - truth.phase_map, truth.discs * 0.5,
         3 - truth.target_type, jnp.zeros_like(truth.site_tile)),
    )
    spec = world.specimen
    fake_spec = eqx.tree_at(lambda s: (s.positions, s.atomic_numbers, s.counts),
                            spec, (spec.positions + 2.0, spec.atomic_numbers + 1, spec.counts * 3))
    fake = eqx.tree_at(lambda w: (w.truth, w.specimen), world, (fake_truth, fake_spec))
    _assert_reports_equal(analyst(states[0], world), analyst(states[0], fake))


@pytest.mark.parametrize("name", ANALYSTS)
def test_unobserved_tiles_contribute_nothing(name):
    analyst = ANALYSTS[name]()
    world, states = _partial_states()
    state = states[0]
    observed = np.asarray(state.observed)
    assert observed[[0, 1, 3, 6]].all() and observed.sum() == 4 and not observed[2]
    report = analyst(state, world)
    np.testing.assert_array_equal(report.analysed, observed)
    assert float(jnp.abs(report.defect_counts[2]).sum()) == 0.0
    assert float(report.targets_found[2]) == 0.0 and int(report.phase_map[2].sum()) == 0
    # frames where no dose went are ignored, whatever they hold
    junk = 50.0 * jax.random.uniform(jax.random.key(0), (32, 32))
    noisy = eqx.tree_at(lambda s: s.frames, state, state.frames.at[2].set(junk))
    _assert_reports_equal(analyst(noisy, world), report)
    # nothing seen: an empty report
    nothing, _ = stemgym.reset(jax.random.key(0), world)
    empty = analyst(nothing, world)
    assert not bool(empty.analysed.any()) and not bool(empty.particles_mask.any())
    assert float(stemgym.task_scores(world, empty).sum()) == 0.0


@pytest.mark.parametrize("name", ANALYSTS)
def test_one_tile_analysed_alone_gives_its_part_of_the_report(name):
    analyst = ANALYSTS[name]()
    world, states = _partial_states()
    state = states[0]
    report = analyst(state, world)
    # one tile analysed on its own gives that tile's part of the report
    one = eqx.filter_jit(lambda a, *args: a.tile_features(*args))(
        analyst, state.frames[3:4], state.tile_dose[3:4], jnp.array([3], jnp.int32), world)
    np.testing.assert_allclose(one.counts[0], report.defect_counts[3], atol=1e-5)
    if name == "cnn":
        np.testing.assert_array_equal(one.phase[0], report.phase_map[3])
    # the Gymnasium form f(frames, tile_dose, world)
    _assert_reports_equal(analyst.from_frames(np.asarray(state.frames),
                                              np.asarray(state.tile_dose), world),
                          analyst(state, world), atol=1e-5)  # fmt: skip


def test_cnn_beats_the_peak_finder_which_beats_nothing_on_easy_worlds():
    cnn = load_unet_analyst()
    census, search = (stemgym.TASKS.index(t) for t in ("census", "search"))
    for material in ("GaN", "SiGe"):
        world, state = _episode(material)
        assert bool(state.observed.all())
        score = {
            "cnn": stemgym.task_scores(world, cnn(state, world), state.observed),
            "peak": stemgym.task_scores(world, peak_analyst(state, world), state.observed),
            "truth": stemgym.task_scores(world, stemgym.ground_truth_report(world, state.observed),
                                         state.observed),
            "empty": stemgym.task_scores(world, stemgym.empty_report(world), state.observed),
        }
        score = {k: np.asarray(v) for k, v in score.items()}
        for task in (census, search):
            assert score["truth"][task] == 1.0 > score["cnn"][task] > score["peak"][task]
            assert score["peak"][task] > score["empty"][task] == 0.0
        assert 1.0 > score["cnn"].mean() > score["peak"].mean() > score["empty"].mean()


def test_peak_finder_finds_particles_on_a_support_but_not_grains():
    world, state = _episode("Nanoparticles")
    scores = stemgym.task_scores(world, peak_analyst(state, world), state.observed)
    assert float(scores[stemgym.TASKS.index("phase")]) > 0.6
    assert float(scores[stemgym.TASKS.index("particles")]) > 0.3
    # a crystal and its rotated grains: one brightness level, so everything is matrix
    world, state = _episode("GaN")
    assert int(peak_analyst(state, world).phase_map.sum()) == 0


def test_shipped_weights_load_and_match_their_record():
    path = DATA_DIR / "unet_analyst.eqx"
    record = json.loads(path.with_suffix(".json").read_text())
    assert path.stat().st_size == record["weights_bytes"] < 2 * 2**20
    assert "benchmarks/train_stemgym_unet.py" in record["command"]
    analyst = load_unet_analyst()
    assert isinstance(analyst, UNetAnalyst) and load_unet_analyst() is analyst
    assert analyst.ensemble.weights[0].shape[0] == record["members"]
    assert analyst.ensemble.channels == tuple(record["channels"])
    assert analyst.ensemble.n_parameters == record["n_parameters"]
    np.testing.assert_allclose(analyst.thresholds, record["thresholds"])
    held_out = record["held_out"]
    assert held_out["pixel_accuracy"] > 0.9 and held_out["f1"]["column"] > 0.7
    assert set(held_out["f1"]) == set(unet.CLASSES)
    for name in ("date", "settings", "timings_s", "episodes"):
        assert name in record


def test_uncertainty_is_an_entropy_per_tile():
    analyst = load_unet_analyst()
    world, states = _partial_states()
    u = np.asarray(analyst.uncertainty(states[0], world))
    assert u.shape == (world.n_tiles,)
    seen = np.asarray(states[0].observed)
    np.testing.assert_allclose(u[~seen], math.log(4))  # never seen: nothing known
    assert np.all((u[seen] > 0) & (u[seen] < 0.5 * math.log(4)))
    _assert_reports_equal(cnn_analyst(states[0], world), analyst(states[0], world))


def test_search_target_comes_from_the_material():
    assert int(target_type(_world("GaN"))) == int(_world("GaN").truth.target_type) == 1
    for i, material in enumerate(stemgym.MATERIALS):
        world = eqx.tree_at(lambda w: w.material, _world("GaN"), jnp.asarray(i, jnp.int32))
        assert int(target_type(world)) == SEARCH_TARGETS[material]


def test_bad_inputs_raise_value_errors(tmp_path):
    world, states = _partial_states()
    state = states[0]
    with pytest.raises(ValueError, match="world must be"):
        peak_analyst(state, "GaN")
    with pytest.raises(ValueError, match="state must be"):
        peak_analyst(state.frames, world)
    with pytest.raises(ValueError, match=r"frames must have shape \(16, 32, 32\)"):
        peak_analyst.from_frames(np.zeros((4, 16, 16)), np.ones(4), world)
    with pytest.raises(ValueError, match=r"tile_dose must be finite and >= 0"):
        peak_analyst.from_frames(np.zeros((16, 32, 32)), np.r_[1.0, -2.0, np.zeros(14)], world)
    with pytest.raises(ValueError, match="tile_dose must have shape"):
        peak_analyst.from_frames(np.zeros((16, 32, 32)), np.ones(3), world)
    with pytest.raises(ValueError, match="does not exist"):
        load_unet_analyst(tmp_path / "missing.eqx")
    (tmp_path / "bad.eqx").write_bytes(b"not weights")
    (tmp_path / "bad.json").write_text(json.dumps({"members": 2, "channels": [8, 16, 32],
                                                   "thresholds": [0.5, 0.5]}))  # fmt: skip
    with pytest.raises(ValueError, match="does not hold a U-Net ensemble"):
        load_unet_analyst(tmp_path / "bad.eqx")
    with pytest.raises(ValueError, match="channels must be"):
        unet.UNet(jax.random.key(0), (8, 16))
    with pytest.raises(ValueError, match="dose_range_e_per_A2"):
        unet.simulate_tiles(jax.random.key(0), world, 4, (100.0, 10.0))
    with pytest.raises(ValueError, match="inputs must have shape"):
        unet.ensemble_predict(load_unet_analyst().ensemble, jnp.zeros((2, 18, 18, 3)))


# --------------------------------------------------------------------------------------------
# building blocks


def test_unet_ensemble_round_trips_through_a_file(tmp_path):
    ensemble = load_unet_analyst().ensemble
    members, channels = ensemble.weights[0].shape[0], ensemble.channels
    unet.save_ensemble(tmp_path / "e.eqx", ensemble)
    back = unet.load_ensemble(tmp_path / "e.eqx", members, channels)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(ensemble)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="does not hold a U-Net ensemble"):
        unet.load_ensemble(tmp_path / "e.eqx", members + 1, channels)


def test_labels_count_the_true_defects_of_each_tile():
    world = _world("GaN")
    tiles = jnp.arange(world.n_tiles)
    labels = eqx.filter_jit(jax.vmap(unet.tile_labels, in_axes=(None, 0, None)))
    classes, phase, counts = labels(world, tiles, jnp.zeros(2))
    np.testing.assert_array_equal(counts, stemgym.tile_defect_counts(world))
    np.testing.assert_array_equal(phase, stemgym.tile_phase_maps(world))
    assert set(np.unique(classes)) == {0, 1, 2, 3}


def test_peaks_and_blobs_on_synthetic_maps():
    yy, xx = np.mgrid[:16, :16]
    centres = ((3, 3), (8, 12), (12, 5))
    image = jnp.asarray(sum(np.exp(-((xx - c) ** 2 + (yy - r) ** 2) / 2.0) for r, c in centres),
                        jnp.float32)  # fmt: skip
    assert int(local_maxima(image, 2).sum()) >= 3
    assert int(local_maxima(image, 2)[3, 3]) == 1
    assert float(count_peaks(image, 0.5)) == 3.0
    assert float(count_peaks(jnp.stack([image, 0.4 * image]), jnp.array([0.5, 0.5]))[1]) == 0.0
    assert int(local_maxima(jnp.ones((4, 4)), 2).sum()) == 1  # a plateau is one peak

    world = _world("GaN")
    field = world.field.positions()  # (H, W, 2)
    centre, radius = world.field_lower_A + jnp.array([8.0, 10.0]), 3.5
    disc = jnp.sum((field - centre) ** 2, -1) < radius**2
    n, p = world.tiles, world.tile_px
    tiles = disc.reshape(n, p, n, p).transpose(0, 2, 1, 3).reshape(n * n, p, p)
    blobs = eqx.filter_jit(blob_particles)
    particles, mask = blobs(tiles, jnp.ones(16, bool), world, 1.0)
    assert int(mask.sum()) == 1
    np.testing.assert_allclose(particles[0, :2], centre, atol=0.1)
    assert particles[0, 2] == pytest.approx(radius, rel=0.05)
    # a blob in a tile not observed is not reported
    particles, mask = blobs(tiles, jnp.zeros(16, bool), world, 1.0)
    assert not bool(mask.any())


def test_peak_analyst_settings_are_static_and_hashable():
    custom = PeakAnalyst(outlier_z=5.0)
    assert hash(custom) == hash(PeakAnalyst(outlier_z=5.0)) and custom != peak_analyst
