"""Physical constants (CODATA 2018) and relativistic electron-beam quantities.

Energies of the beam are kinetic energies in keV; lengths in Å.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from stemjax._validation import check_positive

ELECTRON_REST_ENERGY_EV = 510_998.950_00
"""m₀c² of the electron, eV."""
HC_EV_ANGSTROM = 12_398.419_843_320_026
"""Planck constant × speed of light, eV·Å."""
ELEMENTARY_CHARGE_C = 1.602_176_634e-19
"""Elementary charge, C."""
BOHR_RADIUS_ANGSTROM = 0.529_177_210_903
"""Bohr radius a₀, Å."""
RYDBERG_ENERGY_EV = 13.605_693_122_994
"""Rydberg energy, eV."""
ATOMIC_MASS_UNIT_EV = 931_494_102.42
"""Atomic mass constant × c², eV."""
FINE_STRUCTURE_INVERSE = 137.035_999_084
"""Inverse fine-structure constant 1/α."""


def _energy_ev(energy_kev: ArrayLike) -> Array:
    check_positive("energy_kev", energy_kev, "keV")
    return jnp.asarray(energy_kev, dtype=jnp.result_type(float)) * 1e3


def wavelength(energy_kev: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """Relativistic electron wavelength λ = hc / √(E (2m₀c² + E)), in Å.

    Args:
        energy_kev: kinetic energy of the beam electrons, keV, any shape.
    """
    e = _energy_ev(energy_kev)
    return HC_EV_ANGSTROM / jnp.sqrt(e * (2.0 * ELECTRON_REST_ENERGY_EV + e))


def lorentz_factor(energy_kev: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """γ = 1 + E / m₀c² of the beam electrons (dimensionless)."""
    return 1.0 + _energy_ev(energy_kev) / ELECTRON_REST_ENERGY_EV


def interaction_parameter(energy_kev: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """Interaction parameter σ = 2πγm₀eλ/h², in rad V⁻¹ Å⁻¹.

    Written as σ = (2π / (λE)) (m₀c² + E) / (2m₀c² + E) with E in eV (Kirkland 2010, eq. 5.6).
    """
    e = _energy_ev(energy_kev)
    mc2 = ELECTRON_REST_ENERGY_EV
    return 2.0 * jnp.pi / (wavelength(energy_kev) * e) * (mc2 + e) / (2.0 * mc2 + e)
