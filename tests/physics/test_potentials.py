"""Scattering factors and projected potentials: row P9 of shared/reference/checks.md, the
transcription of both tables, and the structure-factor potential (units, Debye–Waller
convention, occupancy, padding, slicing)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics import make_specimen, perovskite
from stemjax.physics.constants import BOHR_RADIUS_ANGSTROM
from stemjax.physics.potentials import (
    POTENTIAL_PER_SCATTERING_FACTOR,
    _DATA,
    _evaluate,
    _table,
    projected_potential,
    scattering_factor,
    slice_potentials,
    specimen_grid,
)


def test_p9_lobato_hydrogen_at_zero_is_the_bohr_radius(dtype):
    assert float(scattering_factor(1, jnp.asarray(0.0, dtype))) == pytest.approx(0.52918, abs=1e-5)


def test_tables_cover_h_to_u_and_name_their_source():
    for name in ("lobato", "kirkland"):
        doc = json.loads((_DATA / f"{name}.json").read_text())
        assert {"citation", "source", "licence"} <= doc.keys()
        assert sorted(int(z) for z in doc["elements"]) == list(range(1, 93))
        assert np.all(np.isfinite(_table(name)[1:]))


def test_lobato_transcription_obeys_the_charge_sum_rule():
    # Lobato & Van Dyck impose Σ aᵢ/bᵢ = Z/(2π²a₀) exactly (f_x(0) = Z): a slip in any
    # transcribed digit breaks it
    table = _table("lobato")
    z = np.arange(1, 93)
    total = np.sum(table[1:, :5] / table[1:, 5:], axis=1)
    np.testing.assert_allclose(total, z / (2 * np.pi**2 * BOHR_RADIUS_ANGSTROM), rtol=1e-9)


def test_lobato_and_kirkland_agree_at_zero_and_large_angles():
    """f_e(0) of the two parametrisations: within 2 % except where Kirkland's two Dirac–Fock
    tables differ, within 11 % everywhere.

    The published Lobato coefficients were fitted to Kirkland's 1998 multiconfiguration
    Dirac–Fock table, Kirkland's 2nd-edition parameters to his 2010 average-configuration
    table. The tables differ at small g by up to ~10 % for a few elements (Cr 5.9 %, Ir and
    Po 10 %, as stated in the Lobato release); elsewhere both fits reproduce the same data to
    well under 2 % (median 0.4 %). Beyond g = 2 Å⁻¹ the tables agree and the fits match within
    3 % for every element (worst He, 2.4 %), which also checks Kirkland's transcription.
    """
    lobato, kirkland = _table("lobato")[1:], _table("kirkland")[1:]
    zero = np.zeros(92)
    at_zero = _evaluate(kirkland, zero, "kirkland", np) / _evaluate(lobato, zero, "lobato", np)
    relative = np.abs(at_zero - 1)
    tables_differ = {24, 41, 42, 43, 44, 45, 77, 78, 81, 83, 84, 87, 88}
    others = [r for z, r in enumerate(relative, start=1) if z not in tables_differ]
    assert np.max(relative) < 0.11
    assert np.max(others) < 0.02
    assert np.median(relative) < 0.005
    g2 = np.linspace(2.0, 12.0, 101) ** 2
    for z in range(1, 93):
        fl = _evaluate(lobato[z - 1], g2, "lobato", np)
        fk = _evaluate(kirkland[z - 1], g2, "kirkland", np)
        assert np.max(np.abs(fk / fl - 1)) < 0.03, z


def test_lobato_falls_as_the_unscreened_nucleus():
    # Mott–Bethe: g² f_e(g) → Z/(2π² a₀) as g → ∞
    z = np.array([6, 38, 92])
    g = 200.0
    limit = float(g**2) * np.asarray(scattering_factor(z, g))
    np.testing.assert_allclose(limit, z / (2 * np.pi**2 * BOHR_RADIUS_ANGSTROM), rtol=1e-3)


def _atom(z=79, x=5.1, y=4.3, **kwargs):
    return make_specimen([[x, y, 0.0]], [z], (10.0, 8.0, 2.0), **kwargs)


def test_projected_potential_integrates_to_the_scattering_factor_at_zero():
    specimen = _atom()
    shape, sampling = specimen_grid(specimen, 0.1)
    assert shape == (80, 100)
    potential = projected_potential(specimen, shape, sampling)
    integral = float(jnp.sum(potential)) * sampling[0] * sampling[1]  # V·Å³
    expected = POTENTIAL_PER_SCATTERING_FACTOR * float(scattering_factor(79, 0.0))
    assert POTENTIAL_PER_SCATTERING_FACTOR == pytest.approx(47.8776, abs=1e-3)
    assert integral == pytest.approx(expected, rel=1e-4)
    # the peak sits on the atom: (x, y) = (5.1, 4.3) Å is pixel [43, 51]
    assert np.unravel_index(int(jnp.argmax(potential)), shape) == (43, 51)


def test_debye_waller_damps_each_fourier_component_by_exp_minus_b_g2_over_4():
    shape, sampling = (80, 100), (0.1, 0.1)
    still = projected_potential(_atom(), shape, sampling)
    warm = projected_potential(_atom(debye_waller=0.8), shape, sampling)
    ratio = np.abs(np.fft.fft2(np.asarray(warm, float)) / np.fft.fft2(np.asarray(still, float)))
    g2 = np.fft.fftfreq(80, 0.1)[:, None] ** 2 + np.fft.fftfreq(100, 0.1)[None, :] ** 2
    low = g2 < 4.0
    np.testing.assert_allclose(ratio[low], np.exp(-0.8 * g2[low] / 4), rtol=2e-3)


def test_occupancy_scales_and_padding_slots_add_nothing():
    shape, sampling = (80, 100), (0.1, 0.1)
    full = projected_potential(_atom(), shape, sampling)
    half = projected_potential(_atom(occupancies=0.5), shape, sampling)
    np.testing.assert_allclose(half, 0.5 * full, rtol=1e-5, atol=1e-3)
    padded = make_specimen(
        [[5.1, 4.3, 0.0], [1.0, 1.0, 0.0]], [79, 0], (10.0, 8.0, 2.0), present=[True, False]
    )
    np.testing.assert_allclose(projected_potential(padded, shape, sampling), full, atol=1e-3)


def test_slices_add_up_to_the_projection_and_split_columns_by_depth():
    specimen = perovskite("SrTiO3", (1, 1), 8.0)  # 2 layers, c = 3.905 Å
    shape, sampling = specimen_grid(specimen, 0.15)
    slices = slice_potentials(specimen, shape, sampling, 3.905 / 2)
    assert slices.shape == (4, *shape)
    total = projected_potential(specimen, shape, sampling)
    np.testing.assert_allclose(jnp.sum(slices, axis=0), total, rtol=1e-4, atol=0.05)
    # slices 0 and 2 hold Sr + apical O (z = 0), slices 1 and 3 Ti + two O (z = c/2)
    np.testing.assert_allclose(slices[0], slices[2], rtol=1e-5, atol=1e-3)
    assert float(slices[0][0, 0]) > 10 * float(slices[1][0, 0])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: scattering_factor(93, 0.0), r"z must lie in \[1, 92\]; got 93"),
        (lambda: scattering_factor(6.5, 0.0), r"z must hold integer atomic numbers"),
        (lambda: scattering_factor(6, -1.0), r"g_inv_angstrom must lie in \[0.0, inf\] Å⁻¹"),
        (lambda: scattering_factor(6, 0.0, "peng"), r"parametrisation must be one of"),
        (lambda: projected_potential(_atom(), (0, 10), 0.1), r"shape\[0\] must be an integer >= 1"),
        (lambda: projected_potential(_atom(), (8, 10), 0.1, species=()), r"species must name"),
        (lambda: specimen_grid(_atom(), -0.1), r"sampling must be > 0 Å"),
    ],
)
def test_bad_inputs_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_sites_outside_the_given_species_raise():
    with pytest.raises(Exception, match=r"not in species \(6,\)"):
        projected_potential(_atom(), (80, 100), 0.1, species=(6,)).block_until_ready()
