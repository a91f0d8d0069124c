"""Detectors: row P5 and the vacuum part of row P12 of shared/reference/checks.md."""

import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics import AnnularDetector, Probe, max_scattering_angle


def test_p5_largest_angle_after_two_thirds_antialiasing(dtype):
    assert float(max_scattering_angle(jnp.asarray(0.05, dtype), 80.0)) == pytest.approx(278, abs=0.5)
    assert float(max_scattering_angle(jnp.asarray(0.05, dtype), 200.0)) == pytest.approx(167, abs=0.5)
    # a 200 mrad outer angle at 200 keV needs Δx <= 0.0418 Å (0.041799 Å)
    assert float(max_scattering_angle(0.04179, 200.0)) >= 200.0
    assert float(max_scattering_angle(0.04181, 200.0)) < 200.0


def test_p12_vacuum_probe_lands_in_bright_field_only(dtype):
    probe = Probe(200.0, 21.0, aberrations={"defocus": 30.0, "Cs": 1e6})
    pattern = probe.diffraction_pattern((256, 256), 0.04)
    assert float(pattern.sum()) == pytest.approx(1.0, rel=1e-5)
    # the anti-aliasing edge spills past 21 mrad by half a reciprocal pixel (1.22 mrad here)
    bright_field = AnnularDetector(0.0, 22.3).integrate(pattern, 0.04, 200.0)
    haadf = AnnularDetector(68.0, 200.0).integrate(pattern, 0.04, 200.0)
    assert float(bright_field) == pytest.approx(1.0, rel=1e-5)
    assert float(haadf) == 0.0


def test_annuli_that_tile_the_grid_collect_everything():
    pattern = jnp.asarray(np.random.default_rng(0).random((64, 64)))
    pattern = pattern / pattern.sum()
    edges = [0.0, 10.0, 30.0, 50.0, 80.0]
    total = sum(
        float(AnnularDetector(a, b).integrate(pattern, 0.02, 200.0)) for a, b in zip(edges, edges[1:])
    )
    # 0.02 Å at 200 keV reaches 418 mrad after 2/3 anti-aliasing
    outer = float(AnnularDetector(80.0, 400.0).integrate(pattern, 0.02, 200.0))
    # the rest of the grid, beyond 400 mrad (out to the corners at √2 × 627 mrad)
    ky, kx = np.meshgrid(np.fft.fftfreq(64, 0.02), np.fft.fftfreq(64, 0.02), indexing="ij")
    angle = 1e3 * 0.025079 * np.hypot(kx, ky)
    beyond = float(np.asarray(pattern)[angle >= 400.0].sum())
    assert total + outer + beyond == pytest.approx(1.0, rel=1e-6)


def test_sampling_too_coarse_for_the_outer_angle_is_rejected():
    pattern = jnp.ones((64, 64)) / 64**2
    with pytest.raises(ValueError, match=r"sampling 0.05 Å is too coarse .* 200.0 mrad .* <= 0.0418 Å"):
        AnnularDetector(68.0, 200.0).integrate(pattern, 0.05, 200.0)


@pytest.mark.parametrize(
    "inner, outer, message",
    [
        (200.0, 68.0, r"inner_mrad must be smaller than outer_mrad; got inner_mrad=200.0 mrad"),
        (68.0, 68.0, r"inner_mrad must be smaller than outer_mrad"),
        (-1.0, 68.0, r"inner_mrad must be >= 0 mrad"),
        (10.0, float("nan"), r"outer_mrad must be a number"),
    ],
)
def test_bad_detector_angles_are_rejected(inner, outer, message):
    with pytest.raises(ValueError, match=message):
        AnnularDetector(inner, outer)
