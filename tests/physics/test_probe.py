"""Probe: rows P3, P4, P6 and P8 of shared/reference/checks.md, conventions and invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics import Probe, nyquist_probe_step, point_resolution, scherzer_defocus


def fwhm_along_x(intensity, sampling):
    """FWHM (Å) of the central row of a centred probe, by linear interpolation."""
    row = np.asarray(intensity[intensity.shape[0] // 2], dtype=float)
    half = row.max() / 2
    above = np.flatnonzero(row >= half)
    lo, hi = above[0], above[-1]
    left = lo - 1 + (half - row[lo - 1]) / (row[lo] - row[lo - 1])
    right = hi + (row[hi] - half) / (row[hi] - row[hi + 1])
    return (right - left) * sampling


def test_p3_scherzer_defocus(dtype):
    assert float(scherzer_defocus(jnp.asarray(1e5, dtype), 80.0)) == pytest.approx(79.14, abs=0.01)
    # checks.md prints 699.3, rounded; √(1.5 · 1.3e7 Å · 0.0250793 Å) = 699.319 Å
    got = float(scherzer_defocus(jnp.asarray(1.3e7, dtype), 200.0))
    assert got == pytest.approx(np.sqrt(1.5 * 1.3e7 * 0.02507934), abs=0.01)
    assert got == pytest.approx(699.3, abs=0.05)


def test_p4_nyquist_probe_step(dtype):
    assert float(nyquist_probe_step(jnp.asarray(80.0, dtype), 20.0)) == pytest.approx(0.522, abs=1e-3)
    assert float(nyquist_probe_step(jnp.asarray(200.0, dtype), 21.0)) == pytest.approx(0.2986, abs=1e-3)


def test_p6_aberration_free_probe_fwhm(dtype):
    probe = Probe(200.0, 21.0)
    intensity = probe.intensity((512, 512), 0.05)
    assert intensity.dtype == dtype
    assert fwhm_along_x(intensity, 0.05) == pytest.approx(0.6145, abs=0.005)


def test_p8_point_resolution_and_first_zero_of_sin_chi(x64):
    assert float(point_resolution(1e7, 200.0)) == pytest.approx(2.26, abs=0.01)
    probe = Probe(200.0, 21.0, aberrations={"defocus": 600.0, "Cs": 1e7})
    k = jnp.linspace(0.01, 0.8, 200_001)
    sin_chi = np.sin(np.asarray(probe.phase(jnp.zeros_like(k), k)))
    first_zero = k[np.flatnonzero(np.diff(np.sign(sin_chi)) != 0)[0]]
    assert 1.0 / float(first_zero) == pytest.approx(2.26, abs=0.05)


def test_intensity_is_normalised_centred_and_nonnegative(dtype):
    probe = Probe(200.0, 21.0, aberrations={"defocus": 50.0, "C12": 20.0, "phi12": 0.4})
    intensity = np.asarray(probe.intensity((128, 96), 0.1))
    assert intensity.sum() == pytest.approx(1.0, rel=1e-5)
    assert intensity.min() > -1e-7
    # aberrations with even m keep the probe centrosymmetric about (h//2, w//2)
    centred = intensity[1:, 1:]
    np.testing.assert_allclose(centred, centred[::-1, ::-1], atol=1e-6 * intensity.max())
    assert np.unravel_index(intensity.argmax(), intensity.shape) == (64, 48)


def test_defocus_sign_convention_and_aliases(x64):
    probe = Probe(200.0, 21.0, aberrations={"defocus": 100.0, "Cs": 1e6})
    assert float(probe.aberration("C10")) == -100.0
    assert float(probe.defocus) == 100.0
    assert float(probe.aberration("C30")) == 1e6
    lam, k = probe.wavelength, 0.3
    # χ(k) = π λ k² (−Δf + ½ Cs λ² k²) for defocus and Cs (Kirkland's convention)
    expected = np.pi * lam * k**2 * (-100.0 + 0.5 * 1e6 * lam**2 * k**2)
    assert float(probe.phase(0.0, k)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "name, m", [("C12", 2), ("C21", 1), ("C23", 3), ("C32", 2), ("C34", 4), ("C45", 5), ("C56", 6)]
)
def test_each_polar_aberration_has_its_m_fold_symmetry(name, m, x64):
    angle = "phi" + name[1:]
    probe = Probe(300.0, 30.0, aberrations={name: 1e3, angle: 0.3})
    azimuth = np.linspace(0, 2 * np.pi, 13)
    k = 0.5
    chi = np.asarray(probe.phase(k * np.sin(azimuth), k * np.cos(azimuth)))
    turned = azimuth + 2 * np.pi / m
    chi_turned = np.asarray(probe.phase(k * np.sin(turned), k * np.cos(turned)))
    np.testing.assert_allclose(chi_turned, chi, atol=1e-9 * np.abs(chi).max())
    # rotating the aberration's angle rotates χ with it
    rotated = probe.with_aberrations(**{angle: 0.3 + 0.2})
    chi_rot = np.asarray(rotated.phase(k * np.sin(azimuth + 0.2), k * np.cos(azimuth + 0.2)))
    np.testing.assert_allclose(chi_rot, chi, atol=1e-9 * np.abs(chi).max())


def test_with_aberrations_replaces_only_the_named_coefficients():
    probe = Probe(200.0, 21.0, aberrations={"Cs": 1e6, "C12": 30.0})
    changed = probe.with_aberrations(defocus=40.0)
    assert float(changed.defocus) == 40.0
    assert float(changed.aberration("Cs")) == 1e6
    assert float(changed.aberration("C12")) == 30.0


def test_focal_spread_matches_a_dense_average_over_defocus(x64):
    spread = 40.0
    probe = Probe(200.0, 21.0, aberrations={"Cs": 1e6}, focal_spread=spread, focal_points=9)
    got = np.asarray(probe.intensity((64, 64), 0.15))
    offsets = np.linspace(-6 * spread, 6 * spread, 241)
    weights = np.exp(-0.5 * (offsets / spread) ** 2)
    weights /= weights.sum()
    coherent = Probe(200.0, 21.0, aberrations={"Cs": 1e6})
    at_defocus = jax.vmap(lambda d: coherent.with_aberrations(defocus=d).intensity((64, 64), 0.15))
    dense = np.tensordot(weights, np.asarray(at_defocus(jnp.asarray(offsets))), axes=1)
    np.testing.assert_allclose(got, dense, atol=1e-5 * dense.max())
    assert got.max() < np.asarray(coherent.intensity((64, 64), 0.15)).max()


def test_source_size_multiplies_the_spectrum_by_a_gaussian(x64):
    sharp = Probe(200.0, 21.0)
    blurred = Probe(200.0, 21.0, source_size=0.3)
    ky, kx = jnp.meshgrid(jnp.fft.fftfreq(64, 0.1), jnp.fft.fftfreq(64, 0.1), indexing="ij")
    ratio = np.exp(-2 * np.pi**2 * 0.09 * (kx**2 + ky**2))
    np.testing.assert_allclose(
        blurred.intensity_spectrum((64, 64), 0.1),
        sharp.intensity_spectrum((64, 64), 0.1) * ratio,
        atol=1e-12,
    )
    assert float(blurred.intensity((64, 64), 0.1).sum()) == pytest.approx(1.0)


def test_gradient_of_peak_intensity_wrt_defocus_matches_finite_differences(x64):
    probe = Probe(200.0, 21.0)

    def peak(defocus):
        return probe.with_aberrations(defocus=defocus).intensity((64, 64), 0.1)[32, 32]

    grad = jax.grad(peak)(30.0)
    h = 1e-3
    fd = (peak(30.0 + h) - peak(30.0 - h)) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-6)
    assert float(grad) < 0  # without Cs, defocus lowers the peak


def test_vmap_over_probes_equals_a_loop():
    defoci = jnp.array([0.0, 20.0, 60.0])
    base = Probe(200.0, 21.0, aberrations={"Cs": 1e6})
    probes = jax.vmap(lambda d: base.with_aberrations(defocus=d))(defoci)
    batched = jax.vmap(lambda p: p.intensity((48, 48), 0.15))(probes)
    looped = jnp.stack([base.with_aberrations(defocus=d).intensity((48, 48), 0.15) for d in defoci])
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-8)


def test_intensity_jits():
    probe = Probe(200.0, 21.0, aberrations={"defocus": 10.0})
    jitted = jax.jit(lambda p: p.intensity((32, 32), 0.2))(probe)
    np.testing.assert_allclose(jitted, probe.intensity((32, 32), 0.2), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"energy_kev": 0.0}, r"energy_kev must be > 0 keV.*got 0.0"),
        ({"energy_kev": -80.0}, r"energy_kev must be > 0 keV.*got -80.0"),
        ({"semiangle_mrad": 0.0}, r"semiangle_mrad must be > 0 mrad.*got 0.0"),
        ({"semiangle_mrad": -5.0}, r"semiangle_mrad must be > 0 mrad.*got -5.0"),
        ({"focal_spread": -1.0}, r"focal_spread must be >= 0 Å"),
        ({"aberrations": {"C99": 1.0}}, r"aberrations has an unknown name 'C99'"),
        ({"aberrations": {"Cs": float("nan")}}, r"aberrations\['Cs'\] must be finite"),
    ],
)
def test_bad_probe_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Probe(**kwargs)
