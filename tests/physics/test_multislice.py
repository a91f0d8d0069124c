"""Multislice: rows P5, P7 and P10 of shared/reference/checks.md, conservation of electrons,
gradients against finite differences, vmap against a loop, frozen phonons, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from equinox import tree_at

from stemjax.physics import AnnularDetector, Probe, make_specimen
from stemjax.physics.detector import radial_profile
from stemjax.physics.multislice import (
    Multislice,
    ctf_image,
    fresnel_propagator,
    propagate,
    thermal_displacements,
)

HAADF = AnnularDetector(68.0, 200.0)


def _single_atom(z=79, x=4.3, y=4.1, cell=(8.0, 8.0, 2.0), **kwargs):
    return make_specimen([[x, y, 0.0]], [z], cell, **kwargs)


def test_p5_sampling_too_coarse_for_the_detector_is_rejected():
    specimen = _single_atom()
    model = Multislice(Probe(200.0, 21.0), specimen, 0.05)
    message = r"too coarse .* 200.0 mrad .* reaches 16[67].\d mrad .* <= 0.0418 Å"
    with pytest.raises(ValueError, match=message):
        model.scan(specimen, [[4.0, 4.0]], [HAADF])


def test_p7_kirkland_single_atoms_ctf_image():
    # Kirkland (2010) Fig. 5.12: C, Si, Cu, Au, U in a 50 Å cell, 512², 200 keV, Δf 700 Å,
    # Cs 1.3 mm, 10.37 mrad objective aperture: image range 0.72 … 1.03
    atoms = make_specimen(
        [[5.0, 25.0], [15.0, 25.0], [25.0, 25.0], [35.0, 25.0], [45.0, 25.0]],
        [6, 14, 29, 79, 92],
        (50.0, 50.0, 1.0),
    )
    lens = Probe(200.0, 10.37, aberrations={"defocus": 700.0, "Cs": 1.3e7})
    image = ctf_image(atoms, lens, 50.0 / 512, parametrisation="kirkland")
    assert image.shape == (512, 512)
    assert float(image.min()) == pytest.approx(0.72, abs=0.01)
    assert float(image.max()) == pytest.approx(1.03, abs=0.01)


def test_p10_haadf_of_single_atoms_grows_as_z_to_about_1_7():
    elements = (6, 14, 29, 47, 79, 92)
    probe = Probe(200.0, 21.0)
    template = _single_atom(6, 4.0, 4.0, (8.0, 8.0, 1.0))
    model = Multislice(probe, template, 0.04, 1.0, species=elements)  # one compilation
    signals = [
        float(model.scan(_single_atom(z, 4.0, 4.0, (8.0, 8.0, 1.0)), [[4.0, 4.0]], [HAADF])[0, 0])
        for z in elements
    ]
    exponent = np.polyfit(np.log(elements), np.log(signals), 1)[0]
    assert 1.6 <= exponent <= 1.9


def test_vacuum_keeps_every_electron_through_many_slices():
    # an empty slot (occupancy 0) gives V = 0: 40 slices of free space
    empty = _single_atom(cell=(8.0, 8.0, 40.0), occupancies=0.0)
    probe = Probe(200.0, 21.0, aberrations={"defocus": 50.0})
    model = Multislice(probe, empty, 0.1, 1.0)
    assert model.n_slices == 40
    transmissions = model.transmissions(empty)
    pattern = model.diffraction_pattern(transmissions, [4.0, 4.0])
    assert float(pattern.sum()) == pytest.approx(1.0, abs=1e-5)
    # 40 Å of free space takes 40 Å off the defocus
    propagator = fresnel_propagator(model.shape, model.sampling, 200.0, 1.0)
    exit_wave = propagate(model.probe_wave([4.0, 4.0]), transmissions, propagator)
    focused = model.probe_wave([4.0, 4.0], defocus_offset=-40.0)
    np.testing.assert_allclose(exit_wave, focused, atol=2e-5)


def test_detectors_tiling_all_angles_collect_every_transmitted_electron():
    specimen = _single_atom(79, 4.0, 4.0, (8.0, 8.0, 1.0))
    model = Multislice(Probe(200.0, 21.0), specimen, 0.04, 1.0, species=(6, 79))
    tiles = [AnnularDetector(0.0, 21.0), AnnularDetector(21.0, 68.0),
             AnnularDetector(68.0, 200.0), AnnularDetector(200.0, float("inf"))]  # fmt: skip
    signals = np.asarray(model.scan(specimen, [[4.0, 4.0], [4.5, 4.0]], tiles), float)
    assert signals[0, 2] > signals[1, 2] > 0  # HAADF peaks on the atom
    pattern = model.diffraction_pattern(model.transmissions(specimen), [4.0, 4.0])
    assert float(signals[0].sum()) == pytest.approx(float(pattern.sum()), rel=1e-5)
    # what is missing scattered beyond λ/(3Δx) = 209 mrad, which the grid cannot hold: about
    # 0.6 % of the electrons for a probe on a Au atom (Rutherford tail), none for carbon
    np.testing.assert_allclose(signals.sum(axis=1), 1.0, atol=0.01)
    carbon = _single_atom(6, 4.0, 4.0, (8.0, 8.0, 1.0))
    on_carbon = model.scan(carbon, [[4.0, 4.0]], tiles)
    assert float(on_carbon.sum()) == pytest.approx(1.0, abs=1e-4)
    rings = radial_profile(pattern, model.sampling, 200.0, 1.0)
    assert rings.shape == (208,)  # whole 1-mrad rings inside 208.99 mrad
    # all but the partial ring 208–209 mrad, which is not binned
    assert float(rings.sum()) == pytest.approx(float(signals[0].sum()), abs=1e-4)
    np.testing.assert_allclose(float(rings[68:200].sum()), signals[0, 2], rtol=1e-4)
    radial = model.radial_scan(specimen, [[4.0, 4.0]])
    np.testing.assert_allclose(radial[0], rings, rtol=1e-4, atol=1e-7)


def _small_model(defocus=20.0):
    specimen = _single_atom(79, 4.3, 4.1, (8.0, 8.0, 2.0))
    probe = Probe(200.0, 21.0, aberrations={"defocus": defocus})
    return Multislice(probe, specimen, 0.1, 1.0), specimen


ADF = AnnularDetector(25.0, 80.0)


def test_gradient_with_respect_to_an_atom_position_matches_finite_differences(x64):
    model, specimen = _small_model()

    def signal(x):
        moved = specimen.positions.at[0, 0].set(x)
        shifted = tree_at(lambda s: s.positions, specimen, moved)
        return model.scan(shifted, [[4.0, 4.0]], [ADF])[0, 0]

    x0, h = 4.3, 1e-5
    gradient = float(jax.grad(signal)(jnp.asarray(x0)))
    finite = (float(signal(x0 + h)) - float(signal(x0 - h))) / (2 * h)
    assert abs(gradient) > 1e-3
    assert gradient == pytest.approx(finite, rel=1e-5)


def test_gradient_with_respect_to_defocus_matches_finite_differences(x64):
    model, specimen = _small_model()
    transmissions = model.transmissions(specimen)

    def signal(defocus):
        probe = model.probe.with_aberrations(defocus=defocus)
        pattern = tree_at(lambda m: m.probe, model, probe).diffraction_pattern(
            transmissions, [4.0, 4.0]
        )
        return jnp.sum(ADF.mask(model.shape, model.sampling, 200.0) * pattern)

    d0, h = 20.0, 1e-3
    gradient = float(jax.grad(signal)(jnp.asarray(d0)))
    finite = (float(signal(d0 + h)) - float(signal(d0 - h))) / (2 * h)
    assert abs(gradient) > 1e-6
    assert gradient == pytest.approx(finite, rel=1e-5)


def test_float32_matches_float64():
    model, specimen = _small_model()
    single = np.asarray(model.scan(specimen, [[4.0, 4.0]], [ADF, HAADF.preset("BF")]))
    with jax.enable_x64(True):
        model64, specimen64 = _small_model()
        double = np.asarray(model64.scan(specimen64, [[4.0, 4.0]], [ADF, HAADF.preset("BF")]))
    np.testing.assert_allclose(single, double, rtol=1e-4)


def test_vmap_over_positions_equals_a_loop():
    model, specimen = _small_model()
    positions = jnp.array([[[3.0, 4.0], [4.3, 4.1]], [[5.0, 2.5], [0.5, 7.5]]])  # (2, 2, 2)
    detectors = [AnnularDetector.preset(name) for name in ("BF", "ABF")] + [ADF]
    batched = model.scan(specimen, positions, detectors, chunk_size=3)  # 2 chunks, 2 padded
    assert batched.shape == (2, 2, 3)
    transmissions = model.transmissions(specimen)
    masks = jnp.stack([d.mask(model.shape, model.sampling, 200.0) for d in detectors])
    for index in np.ndindex(2, 2):
        pattern = model.diffraction_pattern(transmissions, positions[index])
        looped = jnp.sum(masks * pattern, axis=(-2, -1))
        np.testing.assert_allclose(batched[index], looped, rtol=1e-5, atol=1e-8)


def test_frozen_phonons_are_reproducible_from_the_key():
    specimen = _single_atom(79, 4.0, 4.0, (8.0, 8.0, 2.0), debye_waller=0.5)
    model = Multislice(Probe(200.0, 21.0), specimen, 0.1, 1.0)
    key = jax.random.key(3)
    first = model.scan(specimen, [[4.0, 4.0]], [ADF], key=key, phonons=2)
    again = model.scan(specimen, [[4.0, 4.0]], [ADF], key=key, phonons=2)
    other = model.scan(specimen, [[4.0, 4.0]], [ADF], key=jax.random.key(4), phonons=2)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    # displacements: standard deviation √(B/8π²) per axis, independent per slice
    wide = make_specimen(np.zeros((4000, 3)), 6, (8.0, 8.0, 2.0), debye_waller=0.5)
    offsets = np.asarray(thermal_displacements(key, wide, 2))
    assert offsets.std() == pytest.approx(np.sqrt(0.5 / (8 * np.pi**2)), rel=0.03)
    assert abs(np.corrcoef(offsets[0, :, 0], offsets[1, :, 0])[0, 1]) < 0.05


def test_detector_presets():
    angles = {name: AnnularDetector.preset(name, 20.0) for name in ("BF", "ABF", "MAADF", "HAADF")}
    assert [(float(d.inner_mrad), float(d.outer_mrad)) for d in angles.values()] == [
        (0.0, 20.0), (10.0, 20.0), (40.0, 68.0), (68.0, 200.0)
    ]  # fmt: skip


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, s: m.scan(s, [[4.0, 4.0]], [ADF], phonons=2), r"phonons > 1 needs a key"),
        (lambda m, s: m.scan(s, [4.0, 4.0, 1.0], [ADF]), r"positions must have shape \(..., 2\)"),
        (lambda m, s: m.scan(s, [[np.nan, 4.0]], [ADF]), r"positions must be finite"),
        (lambda m, s: m.scan(s, [[4.0, 4.0]], []), r"detectors must hold at least one"),
        (lambda m, s: m.scan(s, [[4.0, 4.0]], [ADF], chunk_size=0),
         r"chunk_size must be an integer >= 1"),
        (lambda m, s: m.scan(_single_atom(cell=(9.0, 8.0, 2.0)), [[4.0, 4.0]], [ADF]),
         r"specimen.cell\[:2\] must match the simulation grid's extent"),
        (lambda m, s: Multislice(m.probe, s, 0.5),
         r"keeps angles up to 16.7 mrad, less than the probe's"),
        (lambda m, s: Multislice(m.probe, s, 0.1, -1.0), r"slice_thickness must be > 0 Å"),
        (lambda m, s: Multislice(m.probe, s, 0.1, parametrisation="doyle"),
         r"parametrisation must be one of"),
        (lambda m, s: AnnularDetector.preset("DF"),
         r"name must be one of \('BF', 'ABF', 'MAADF', 'HAADF'\)"),
    ],
)
def test_bad_inputs_are_rejected(call, message):
    model, specimen = _small_model()
    with pytest.raises(ValueError, match=message):
        call(model, specimen)
