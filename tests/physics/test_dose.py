"""Dose bookkeeping: electrons per position (P11), areal dose, dose maps and site doses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics.dose import (
    DoseMap,
    deposit,
    dose_per_area,
    electrons_per_position,
    site_dose,
)
from stemjax.physics.scan import ScanGrid
from stemjax.physics.specimen import make_specimen

P11_ELECTRONS = 1e-12 * 1e-6 / 1.602_176_634e-19  # 624.1509074460763 e⁻


@pytest.mark.parametrize("x64", [False, True])
def test_p11_electrons_per_position(x64):
    with jax.enable_x64(x64):
        n = electrons_per_position(100.0, 1.0)
        assert n.dtype == (jnp.float64 if x64 else jnp.float32)
        np.testing.assert_allclose(float(n), 624.15, atol=0.005)
        np.testing.assert_allclose(float(n), 100 * P11_ELECTRONS, rtol=1e-6)


def test_electrons_scale_with_current_and_dwell_and_broadcast():
    current = jnp.array([0.0, 10.0, 100.0])
    n = electrons_per_position(current, jnp.array([[1.0], [2.5]]))
    assert n.shape == (2, 3)
    np.testing.assert_allclose(n, np.outer([1.0, 2.5], [0.0, 10.0, 100.0]) * P11_ELECTRONS,
                               rtol=1e-6)


def test_dose_per_area_closed_form():
    # 100 pA, 1 µs, 0.5 Å step: 624.15 / 0.25 e⁻/Å².
    np.testing.assert_allclose(float(dose_per_area(100.0, 1.0, 0.5)), 400 * P11_ELECTRONS,
                               rtol=1e-6)
    g = jax.grad(dose_per_area, argnums=2)(100.0, 1.0, 0.5)
    np.testing.assert_allclose(float(g), -2 * 400 * P11_ELECTRONS / 0.5, rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: electrons_per_position(-1.0, 1.0), r"current_pA must be >= 0 pA.*-1\.0"),
        (lambda: electrons_per_position(1.0, -2.0), r"dwell_us must be >= 0 µs.*-2\.0"),
        (lambda: electrons_per_position(jnp.nan, 1.0), r"current_pA must be >= 0"),
        (lambda: dose_per_area(1.0, 1.0, 0.0), r"step_A must be > 0 Å.*0\.0"),
        (lambda: site_dose(_specimen(), ScanGrid((2, 2), 1.0), -5.0),
         r"electrons_per_position must be >= 0.*-5\.0"),
        (lambda: deposit(DoseMap(ScanGrid((2, 2), 1.0)), ScanGrid((2, 2), 1.0), -1.0),
         r"electrons_per_position must be >= 0"),
        (lambda: DoseMap(ScanGrid((2, 2), 1.0), jnp.zeros((3, 2))), r"dose must have shape"),
        (lambda: DoseMap.covering(_specimen(), 0.0), r"pixel_size_A must be > 0 Å"),
    ],
)
def test_errors_name_argument_range_and_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_jit_and_vmap():
    f = jax.jit(electrons_per_position)
    np.testing.assert_allclose(float(f(100.0, 1.0)), 100 * P11_ELECTRONS, rtol=1e-6)
    currents = jnp.linspace(0.0, 50.0, 5)
    batched = jax.vmap(dose_per_area, in_axes=(0, None, None))(currents, 2.0, 0.2)
    looped = [dose_per_area(c, 2.0, 0.2) for c in currents]
    np.testing.assert_allclose(batched, np.array(looped), rtol=1e-6)


def _specimen(xy=((1.0, 1.0),), present=True, cell=(10.0, 8.0, 5.0)):
    xy = np.asarray(xy, float)
    return make_specimen(xy, np.full(len(xy), 6), cell, present=present)


def test_covering_map_tiles_cell():
    m = DoseMap.covering(_specimen(cell=(10.0, 8.0, 5.0)), 0.5)
    assert m.grid.shape == (16, 20)
    np.testing.assert_allclose(m.grid.origin, [0.25, 0.25])
    assert float(m.total_electrons()) == 0.0
    # A cell that is not a whole number of pixels is covered by rounding up.
    m = DoseMap.covering(_specimen(cell=(10.1, 0.3, 5.0)), 0.5)
    assert m.grid.shape == (1, 21)
    # 10 Å / 0.1 Å is 100 pixels despite floating-point rounding.
    assert DoseMap.covering(_specimen(cell=(10.0, 10.0, 5.0)), 0.1).grid.shape == (100, 100)


@pytest.mark.parametrize("x64", [False, True])
def test_deposit_conserves_electrons_inside_map(x64):
    with jax.enable_x64(x64):
        dose_map = DoseMap.covering(_specimen(cell=(20.0, 16.0, 5.0)), 0.25)
        scan = ScanGrid((7, 9), 0.3, origin=(2.13, 3.37))  # not aligned with the pixels
        electrons = 624.15
        new = deposit(dose_map, scan, electrons)
        rtol = 1e-12 if x64 else 2e-6
        np.testing.assert_allclose(float(new.total_electrons()), electrons * 7 * 9, rtol=rtol)
        # Pixels fully inside the scanned rectangle get exactly electrons / step².
        assert new.dose.dtype == (jnp.float64 if x64 else jnp.float32)
        centre = new.dose_at(jnp.array([3.5, 4.5]))
        np.testing.assert_allclose(float(centre), electrons / 0.3**2, rtol=rtol * 10)
        assert float(new.dose_at(jnp.array([10.0, 10.0]))) == 0.0
        assert float(jnp.max(new.dose)) <= electrons / 0.3**2 * (1 + rtol * 10)
        # Deposits add up.
        twice = deposit(new, scan, electrons)
        np.testing.assert_allclose(twice.dose, 2 * new.dose, rtol=rtol)


def test_deposit_on_its_own_grid_is_uniform():
    scan = ScanGrid((5, 6), 0.4, origin=(1.0, 2.0))
    new = deposit(DoseMap(scan), scan, 10.0)
    np.testing.assert_allclose(new.dose, np.full((5, 6), 10.0 / 0.16), rtol=1e-6)


def test_deposit_partly_outside_counts_only_the_overlap():
    dose_map = DoseMap(ScanGrid((4, 4), 1.0, origin=(0.5, 0.5)))  # covers [0, 4]²
    scan = ScanGrid((2, 2), 1.0, origin=(3.5, 0.5))  # covers x in [3, 5], y in [0, 2]
    new = deposit(dose_map, scan, 8.0)
    np.testing.assert_allclose(float(new.total_electrons()), 8.0 * 2, rtol=1e-6)
    expected = np.zeros((4, 4))
    expected[:2, 3] = 8.0
    np.testing.assert_allclose(new.dose, expected, atol=1e-6)


def test_deposit_differentiable_jit_and_vmap():
    dose_map = DoseMap.covering(_specimen(), 0.5)
    scan = ScanGrid((3, 4), 0.7, origin=(2.0, 2.0))

    def total(e):
        return deposit(dose_map, scan, e).total_electrons()

    np.testing.assert_allclose(float(jax.grad(total)(5.0)), 12.0, rtol=1e-5)
    electrons = jnp.array([0.0, 1.0, 3.0])
    batched = jax.vmap(lambda e: deposit(dose_map, scan, e).dose)(electrons)
    looped = np.stack([deposit(dose_map, scan, e).dose for e in electrons])
    np.testing.assert_allclose(batched, looped, rtol=1e-6)
    jitted = jax.jit(deposit)(dose_map, scan, 3.0)
    np.testing.assert_allclose(jitted.dose, looped[2], rtol=1e-6)


def test_site_dose_inside_outside_and_padding():
    scan = ScanGrid((4, 5), 0.5, origin=(2.0, 3.0))  # covers x in [1.75, 4.25), y in [2.75, 4.75)
    xy = [
        (2.0, 3.0),  # a probe position
        (1.75, 2.75),  # lower corner: included
        (4.25, 3.0),  # upper x edge: excluded
        (3.0, 4.74),  # just inside the upper y edge
        (1.7, 3.0),  # outside
        (3.0, 3.0),  # inside but a padding slot
    ]
    specimen = _specimen(xy, present=[True, True, True, True, True, False])
    dose = site_dose(specimen, scan, 7.0)
    areal = 7.0 / 0.25
    np.testing.assert_allclose(dose, [areal, areal, 0.0, areal, 0.0, 0.0], rtol=1e-6)
    # Same value as a dose map of the same scan, read at those sites.
    dose_map = deposit(DoseMap.covering(specimen, 0.25), scan, 7.0)
    np.testing.assert_allclose(dose_map.dose_at(jnp.array([[3.1, 3.6]])), [areal], rtol=1e-6)


def test_site_dose_abutting_scans_count_each_site_once():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0.0, 6.0, size=(200, 2))
    specimen = _specimen(xy, cell=(6.0, 6.0, 1.0))
    whole = ScanGrid((12, 12), 0.5, origin=(0.25, 0.25))
    parts = [whole.subgrid(r, c, (6, 6)) for r in (0, 6) for c in (0, 6)]
    total = sum(site_dose(specimen, g, 3.0) for g in parts)
    np.testing.assert_allclose(total, site_dose(specimen, whole, 3.0), rtol=1e-6)
    np.testing.assert_allclose(total, np.full(200, 3.0 / 0.25), rtol=1e-6)


def test_site_dose_jit_vmap_grad():
    scan = ScanGrid((3, 3), 1.0, origin=(1.0, 1.0))
    specimen = _specimen([(1.0, 1.0), (9.0, 7.0)])
    f = jax.jit(site_dose)
    np.testing.assert_allclose(f(specimen, scan, 2.0), [2.0, 0.0], rtol=1e-6)
    electrons = jnp.array([1.0, 2.0, 4.0])
    batched = jax.vmap(site_dose, in_axes=(None, None, 0))(specimen, scan, electrons)
    np.testing.assert_allclose(batched, [[1.0, 0.0], [2.0, 0.0], [4.0, 0.0]], rtol=1e-6)
    g = jax.grad(lambda e: site_dose(specimen, scan, e).sum())(2.0)
    np.testing.assert_allclose(float(g), 1.0, rtol=1e-6)
