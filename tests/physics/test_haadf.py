"""Fast incoherent HAADF imaging: exactness, conservation, contrast laws and invariants."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics import (
    AnnularDetector,
    IncoherentImaging,
    Probe,
    ScanDistortion,
    ScanGrid,
    annular_cross_section,
    distorted_path,
    make_specimen,
)


def two_atoms(z=(79, 6)):
    return make_specimen([[2.0, 2.0], [3.1, 2.6]], list(z), [6.0, 6.0, 1.0], debye_waller=0.4)


def test_fourier_synthesis_equals_direct_convolution_with_the_probe(dtype):
    # window = 40 × 0.1 Å + 2 × 2 Å = 8 Å: the same period as an 80-pixel probe grid
    probe = Probe(200.0, 21.0, aberrations={"defocus": 20.0, "Cs": 1e6})
    model = IncoherentImaging(probe, margin=2.0)
    grid = ScanGrid((40, 40), 0.1, origin=(0.0, 0.0))
    atom = make_specimen([[2.0, 1.3]], [42], [4.0, 4.0, 1.0])
    tau = np.asarray(model.scattering_depth(atom, grid))
    sigma = float(annular_cross_section(42, 21.0, np.inf, 200.0))
    density = np.asarray(probe.intensity((80, 80), 0.1)) / 0.1**2  # per Å², centred at (40, 40)
    rows, cols = np.arange(40), np.arange(40)
    expected = sigma * density[np.ix_(40 + 13 - rows, 40 + 20 - cols)]
    np.testing.assert_allclose(tau, expected, atol=2e-5 * expected.max())
    assert tau.dtype == dtype


def test_vacuum_gives_bright_field_one_and_haadf_zero():
    probe = Probe(200.0, 21.0)
    empty = make_specimen([[0.0, 0.0]], [6], [5.0, 5.0, 1.0], present=False)
    grid = ScanGrid((8, 8), 0.2)
    bright = IncoherentImaging(probe, AnnularDetector(0.0, 21.0)).render(empty, grid)
    haadf = IncoherentImaging(probe).render(empty, grid)
    np.testing.assert_array_equal(np.asarray(bright), 1.0)
    np.testing.assert_array_equal(np.asarray(haadf), 0.0)


def test_detectors_tiling_all_angles_collect_every_electron():
    probe = Probe(200.0, 21.0)
    model = IncoherentImaging(probe)
    tau = model.scattering_depth(two_atoms(), ScanGrid((24, 24), 0.25))
    edges = [0.0, 10.0, 21.0, 40.0, 68.0, 200.0, np.inf]
    fractions = [model.detector_fraction(AnnularDetector(a, b), tau) for a, b in zip(edges, edges[1:])]
    np.testing.assert_allclose(np.sum(fractions, axis=0), 1.0, rtol=1e-6)
    assert float(jnp.max(tau)) > 0.05  # a real test: plenty of scattering


def test_cross_section_follows_the_z_power_law_and_rutherford_angles(x64):
    ratio = annular_cross_section(79, 68.0, 200.0, 200.0, 1.7) / annular_cross_section(
        6, 68.0, 200.0, 200.0, 1.7
    )
    assert float(ratio) == pytest.approx((79 / 6) ** 1.7, rel=1e-12)
    # small-angle Rutherford for Z² (n = 2): 4πγ²Z²/(a₀²k⁴) (1/a² − 1/b²), here at hand
    gamma, lam, a0 = 1.0 + 200.0 / 510.99895, 0.025079347, 0.529177210903
    k = 2 * np.pi / lam
    by_hand = 4 * np.pi * gamma**2 * 79**2 / (a0**2 * k**4) * (1 / 0.068**2 - 1 / 0.2**2)
    assert float(annular_cross_section(79, 68.0, 200.0, 200.0, 2.0)) == pytest.approx(by_hand, rel=1e-5)


def test_scattering_depth_scales_with_z_n_occupancy_and_column_count():
    probe = Probe(200.0, 21.0)
    model = IncoherentImaging(probe, exponent=1.7)
    grid = ScanGrid((16, 16), 0.25)

    def peak(z, **kw):
        site = make_specimen([[2.0, 2.0]], [z], [4.0, 4.0, 1.0], **kw)
        return float(jnp.max(model.scattering_depth(site, grid)))

    assert peak(79) / peak(6) == pytest.approx((79 / 6) ** 1.7, rel=1e-4)
    assert peak(42, occupancies=0.5) / peak(42) == pytest.approx(0.5, rel=1e-5)
    assert peak(42, counts=3.0) / peak(42) == pytest.approx(3.0, rel=1e-5)


def test_thick_columns_saturate_the_haadf_signal():
    probe = Probe(200.0, 21.0)
    model = IncoherentImaging(probe)
    grid = ScanGrid((16, 16), 0.25)
    signal = [
        float(jnp.max(model.render(make_specimen([[2.0, 2.0]], [38], [4.0, 4.0, 1.0], counts=c), grid)))
        for c in (1.0, 10.0, 100.0)
    ]
    assert signal[0] < signal[1] < signal[2]
    assert signal[2] / signal[1] < 10.0 * 0.5  # well below linear growth
    alpha, inner, outer = 21.0, 68.0, 200.0
    assert signal[2] <= (1 / inner**2 - 1 / outer**2) * alpha**2  # the HAADF share of 1 − e^{−τ}


def test_translating_specimen_and_scan_together_leaves_the_image_unchanged():
    model = IncoherentImaging(Probe(200.0, 21.0, aberrations={"C12": 30.0, "phi12": 0.5}))
    base = two_atoms()
    shift = jnp.array([0.37, -0.81, 0.0])
    moved = eqx.tree_at(lambda s: s.positions, base, base.positions + shift)
    image = model.render(base, ScanGrid((20, 20), 0.2, origin=(0.5, 0.5)))
    image_moved = model.render(moved, ScanGrid((20, 20), 0.2, origin=(0.5 + 0.37, 0.5 - 0.81)))
    np.testing.assert_allclose(image_moved, image, atol=1e-5 * float(image.max()))


def test_a_sub_region_renders_like_the_crop_of_the_full_image():
    model = IncoherentImaging(Probe(200.0, 21.0))
    grid = ScanGrid((30, 30), 0.2)
    full = np.asarray(model.render(two_atoms(), grid))
    part = np.asarray(model.render(two_atoms(), grid.subgrid(5, 8, (12, 10))))
    # differences come only from probe tails beyond the 10 Å margin
    np.testing.assert_allclose(part, full[5:17, 8:18], atol=1e-2 * full.max())


def test_line_jitter_A_shifts_each_line_by_its_offset():
    model = IncoherentImaging(Probe(200.0, 21.0))
    grid = ScanGrid((12, 20), 0.2)
    key = jax.random.key(3)
    path = distorted_path(key, grid, ScanDistortion(line_jitter_A=0.3), dwell_us=5.0)
    jittered = np.asarray(model.render(two_atoms(), path))
    offsets = np.asarray(path.line_x0 - grid.origin[0])
    assert np.std(offsets) > 0.1
    for row in (2, 7):
        shifted = ScanGrid((12, 20), 0.2, origin=(offsets[row], 0.0))
        expected = np.asarray(model.render(two_atoms(), shifted))[row]
        np.testing.assert_allclose(jittered[row], expected, atol=1e-5 * jittered.max())


def test_drift_stretches_lines_and_moves_them():
    grid = ScanGrid((10, 10), 0.2)
    distortion = ScanDistortion(drift_A_per_s=(1e4, 2e4), flyback_us=20.0)
    path = distorted_path(jax.random.key(0), grid, distortion, dwell_us=1.0)
    line_time = 10 * 1e-6 + 20e-6
    np.testing.assert_allclose(path.x_step, 0.2 + 1e4 * 1e-6, rtol=1e-6)
    np.testing.assert_allclose(path.line_x0[3], 1e4 * 3 * line_time, rtol=1e-5)
    np.testing.assert_allclose(path.line_y[3], 0.6 + 2e4 * (3 * line_time + 4.5e-6), rtol=1e-5)


def test_drift_beyond_half_the_margin_is_an_error():
    model = IncoherentImaging(Probe(200.0, 21.0), margin=4.0)
    grid = ScanGrid((10, 10), 0.2)
    path = distorted_path(jax.random.key(0), grid, ScanDistortion(drift_A_per_s=(1e5, 0.0)), 10.0)
    with pytest.raises(Exception, match="increase IncoherentImaging.margin"):
        model.render(two_atoms(), path)


def test_gradients_match_finite_differences(x64):
    grid = ScanGrid((12, 12), 0.3)
    weights = jnp.asarray(np.random.default_rng(1).random((12, 12)))
    specimen = two_atoms()
    probe = Probe(200.0, 21.0, aberrations={"Cs": 5e5})

    def loss(defocus, dx):
        moved = eqx.tree_at(lambda s: s.positions, specimen, specimen.positions.at[0, 0].add(dx))
        model = IncoherentImaging(probe.with_aberrations(defocus=defocus))
        return jnp.sum(weights * model.render(moved, grid))

    g_defocus, g_x = jax.grad(loss, argnums=(0, 1))(25.0, 0.0)
    h = 1e-4
    fd_defocus = (loss(25.0 + h, 0.0) - loss(25.0 - h, 0.0)) / (2 * h)
    fd_x = (loss(25.0, h) - loss(25.0, -h)) / (2 * h)
    assert float(g_defocus) == pytest.approx(float(fd_defocus), rel=1e-5)
    assert float(g_x) == pytest.approx(float(fd_x), rel=1e-5)
    assert abs(float(g_x)) > 1e-6 and abs(float(g_defocus)) > 1e-8


def test_gradient_wrt_the_exponent_is_finite_with_padding_slots(x64):
    padded = make_specimen([[2.0, 2.0], [0.0, 0.0]], [42, 0], [4.0, 4.0, 1.0], present=[True, False])
    grid = ScanGrid((8, 8), 0.5)

    def signal(n):
        return jnp.sum(IncoherentImaging(Probe(200.0, 21.0), exponent=n).render(padded, grid))

    grad = jax.grad(signal)(1.7)
    h = 1e-5
    assert float(grad) == pytest.approx(float((signal(1.7 + h) - signal(1.7 - h)) / (2 * h)), rel=1e-6)
    assert float(grad) > 0  # ln 42 > 0: a larger exponent brightens Mo


def test_vmap_over_specimens_and_probes_equals_a_loop():
    grid = ScanGrid((16, 16), 0.25)
    specimens = [two_atoms((79, 6)), two_atoms((42, 16)), two_atoms((23, 34))]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *specimens)
    model = IncoherentImaging(Probe(200.0, 21.0))
    batched = jax.vmap(lambda s: model.render(s, grid))(batch)
    looped = jnp.stack([model.render(s, grid) for s in specimens])
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-9)

    defoci = jnp.array([0.0, 40.0])
    models = jax.vmap(lambda d: IncoherentImaging(Probe(200.0, 21.0, aberrations={"defocus": d})))(defoci)
    batched = eqx.filter_vmap(lambda m: m.render(specimens[0], grid))(models)
    looped = jnp.stack(
        [IncoherentImaging(Probe(200.0, 21.0, aberrations={"defocus": float(d)})).render(specimens[0], grid)
         for d in defoci]
    )  # fmt: skip
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-9)


def test_render_jits_and_matches_eager():
    model = IncoherentImaging(Probe(200.0, 21.0))
    grid = ScanGrid((16, 16), 0.25)
    jitted = eqx.filter_jit(lambda m, s: m.render(s, grid))(model, two_atoms())
    np.testing.assert_allclose(jitted, model.render(two_atoms(), grid), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"exponent": 0.0}, r"exponent must be > 0"), ({"margin": -1.0}, r"margin must be > 0 Å")],
)
def test_bad_model_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IncoherentImaging(Probe(200.0, 21.0), **kwargs)
