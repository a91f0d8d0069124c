"""Recording frames: dose bookkeeping (row P12), noise, keys and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics import AnnularDetector, IncoherentImaging, Probe, ScanDistortion, ScanGrid
from stemjax.physics.acquisition import Acquisition, acquire
from stemjax.physics.crystals import mx2_monolayer


@pytest.fixture(scope="module")
def scene():
    specimen = mx2_monolayer(jax.random.key(0), "MoS2", (5, 3), dopant="V", dopant_fraction=0.2)
    return specimen, ScanGrid((24, 24), 0.5, origin=(1.0, 1.0))


def test_p12_counts_over_all_detectors_equal_dose_times_scanned_area(scene):
    specimen, grid = scene
    probe = Probe(200.0, 21.0)
    settings = Acquisition(current_pA=50.0, dwell_us=2.0, noise="none")
    edges = [0.0, 21.0, 68.0, 200.0, np.inf]
    total = 0.0
    for a, b in zip(edges, edges[1:]):
        model = IncoherentImaging(probe, AnnularDetector(a, b))
        frame = acquire(jax.random.key(1), model, specimen, grid, settings)
        total += float(jnp.sum(frame.expected_counts))
    area = grid.shape[0] * grid.shape[1] * grid.step**2
    assert float(frame.dose) == pytest.approx(50.0 * 2.0 * 6.241509074 / 0.25, rel=1e-6)
    assert total == pytest.approx(float(frame.dose) * area, rel=1e-5)


def test_p12_shot_noise_is_poisson_around_the_expected_counts(scene):
    specimen, grid = scene
    model = IncoherentImaging(Probe(200.0, 21.0), AnnularDetector(0.0, 21.0))  # bright field
    frame = acquire(jax.random.key(2), model, specimen, grid, Acquisition(1.0, 0.5))
    counts, mean = np.asarray(frame.image), np.asarray(frame.expected_counts)
    assert np.all(counts == np.round(counts))
    # Pearson χ² of 576 Poisson counts about their means: mean 576, sd √(2·576) ≈ 34
    chi2 = np.sum((counts - mean) ** 2 / mean)
    assert abs(chi2 - counts.size) < 4 * np.sqrt(2 * counts.size)


def test_the_same_key_gives_the_same_frame_and_another_key_differs(scene):
    specimen, grid = scene
    model = IncoherentImaging(Probe(200.0, 21.0))
    settings = Acquisition(30.0, 10.0, ScanDistortion(line_jitter_A=0.1), read_noise=0.3)
    a = acquire(jax.random.key(5), model, specimen, grid, settings).image
    b = acquire(jax.random.key(5), model, specimen, grid, settings).image
    c = acquire(jax.random.key(6), model, specimen, grid, settings).image
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_gradient_with_respect_to_dose_scale_matches_finite_differences(scene, x64):
    specimen, grid = scene
    model = IncoherentImaging(Probe(200.0, 21.0))

    def total(current):
        settings = Acquisition(current, 10.0, noise="relaxed")
        return jnp.sum(acquire(jax.random.key(3), model, specimen, grid, settings).image)

    grad = jax.grad(total)(20.0)
    h = 1e-4
    assert float(grad) == pytest.approx(float((total(20.0 + h) - total(20.0 - h)) / (2 * h)), rel=1e-6)
    assert float(grad) > 0


def test_vmap_over_keys_equals_a_loop(scene):
    specimen, grid = scene
    model = IncoherentImaging(Probe(200.0, 21.0))
    settings = Acquisition(30.0, 10.0, ScanDistortion(line_jitter_A=0.1))
    keys = jax.random.split(jax.random.key(9), 3)
    batched = jax.vmap(lambda k: acquire(k, model, specimen, grid, settings).image)(keys)
    looped = jnp.stack([acquire(k, model, specimen, grid, settings).image for k in keys])
    np.testing.assert_array_equal(batched, looped)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"current_pA": -1.0}, r"current_pA must be >= 0 pA"),
        ({"dwell_us": 0.0}, r"dwell_us must be > 0 µs"),
        ({"dwell_us": -3.0}, r"dwell_us must be > 0 µs.*got -3.0"),
        ({"noise": "gaussian"}, r"noise must be one of .*'poisson'.*got 'gaussian'"),
    ],
)
def test_bad_acquisition_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Acquisition(**kwargs)
