"""Rows P1 and P2 of shared/reference/checks.md: wavelength and interaction parameter."""

import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics import interaction_parameter, wavelength

P1 = {60: 0.048661, 80: 0.041757, 100: 0.037014, 200: 0.025079, 300: 0.019687}
P2 = {80: 1.00871e-3, 200: 7.2884e-4, 300: 6.5262e-4}


def test_p1_relativistic_wavelength(dtype):
    energies = jnp.array(list(P1), dtype)
    got = wavelength(energies)
    assert got.dtype == dtype
    np.testing.assert_allclose(np.asarray(got), list(P1.values()), rtol=1e-4)


def test_p2_interaction_parameter(dtype):
    energies = jnp.array(list(P2), dtype)
    got = interaction_parameter(energies)
    assert got.dtype == dtype
    np.testing.assert_allclose(np.asarray(got), list(P2.values()), rtol=1e-4)


def test_wavelength_tends_to_nonrelativistic_limit_at_low_energy(x64):
    # λ → h / √(2 m₀ E) = 12.2643 / √E[eV] Å when E ≪ m₀c²
    energy_ev = 10.0
    assert float(wavelength(energy_ev / 1e3)) == pytest.approx(12.2643 / np.sqrt(energy_ev), rel=1e-4)


@pytest.mark.parametrize("bad", [0.0, -200.0, float("nan"), float("inf")])
def test_nonpositive_energy_is_rejected(bad):
    with pytest.raises(ValueError, match=r"energy_kev must be > 0 keV"):
        wavelength(bad)
    with pytest.raises(ValueError, match=r"energy_kev"):
        interaction_parameter(bad)
