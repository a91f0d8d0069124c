"""Knock-on beam damage: energy transfer, displacement cross sections and atom loss.

A beam electron scattered elastically by a nucleus of mass M at rest transfers at most
E_max = 2E(E + 2m₀c²)/(Mc²) (E the beam's kinetic energy). An atom is displaced when it receives
more than its threshold T_d. The displacement cross section is the Rutherford cross section
corrected with the McKinley–Feshbach approximation to the Mott cross section, integrated over
transfers from T_d to E_max (static lattice: thermal vibrations are neglected, so σ = 0 when
E_max ≤ T_d). Beam energies in keV, transferred energies in eV, cross sections in Å², doses in
e⁻/Å².
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from stemjax._validation import (
    check_in_range,
    check_nonnegative,
    check_positive,
)
from stemjax.physics.constants import (
    ATOMIC_MASS_UNIT_EV,
    BOHR_RADIUS_ANGSTROM,
    ELECTRON_REST_ENERGY_EV,
    FINE_STRUCTURE_INVERSE,
    RYDBERG_ENERGY_EV,
)
from stemjax.physics.elements import ATOMIC_MASSES_U, MAX_ATOMIC_NUMBER
from stemjax.physics.specimen import VACANCY, Specimen

_CROSS_SECTION_PREFACTOR_A2 = (
    4.0 * jnp.pi * BOHR_RADIUS_ANGSTROM**2 * (RYDBERG_ENERGY_EV / ELECTRON_REST_ENERGY_EV) ** 2
)
"""4π a₀² (E_R / m₀c²)² = π r_e², Å² (r_e the classical electron radius)."""


def _float(*values) -> jnp.dtype:
    return jnp.result_type(*values, float)


def max_transferred_energy(
    energy_kev: Float[ArrayLike, "..."], mass_u: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Largest energy a beam electron can give a nucleus at rest (head-on collision), eV.

    E_max = 2E(E + 2m₀c²)/(Mc²) with E the beam energy in eV and M the nuclear mass.
    Carbon (12.011 u): 15.76 eV at 80 keV, 43.69 eV at 200 keV.

    Args:
        energy_kev: kinetic energy of the beam electrons, keV (> 0), any shape.
        mass_u: mass of the target atom, u (> 0), broadcast against ``energy_kev``.
    """
    check_positive("energy_kev", energy_kev, "keV")
    check_positive("mass_u", mass_u, "u")
    dtype = _float(energy_kev, mass_u)
    return _max_transfer(jnp.asarray(energy_kev, dtype) * 1e3, jnp.asarray(mass_u, dtype))


@jax.jit
def _max_transfer(energy_ev: Array, mass_u: Array) -> Array:
    """E_max in eV from the beam energy in eV and the target mass in u."""
    # Grouped as (2E/Mc²)(E + 2m₀c²): no 1e11-sized intermediate in float32.
    e = energy_ev
    return (2.0 * e / (mass_u * ATOMIC_MASS_UNIT_EV)) * (e + 2.0 * ELECTRON_REST_ENERGY_EV)


def _beta_squared(energy_ev: Array) -> Array:
    """β² = E(E + 2m₀c²)/(E + m₀c²)², free of the cancellation in 1 − 1/γ²."""
    mc2 = ELECTRON_REST_ENERGY_EV
    return energy_ev * (energy_ev + 2.0 * mc2) / (energy_ev + mc2) ** 2


def _mass_u(atomic_number: Array, dtype) -> Array:
    return jnp.asarray(ATOMIC_MASSES_U, dtype)[jnp.clip(atomic_number, 1, MAX_ATOMIC_NUMBER)]


def displacement_cross_section(
    energy_kev: Float[ArrayLike, "..."],
    atomic_number: Int[ArrayLike, "..."],
    threshold_ev: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """Knock-on displacement cross section (McKinley–Feshbach), Å².

    With r = T_m/T_d (T_m the maximum transfer for the element's standard atomic weight,
    T_d the threshold), α_Z = Z/137 and β = v/c of the beam (Banhart, Rep. Prog. Phys. 62,
    1181 (1999)):

        σ = 4π a₀² Z² (E_R/m₀c²)² (1 − β²)/β⁴
            × [r − 1 − β² ln r + π α_Z β (2√r − ln r − 2)]

    for r > 1 and 0 otherwise; σ → 0 continuously as r → 1⁺. The gradient is finite everywhere
    (0 below threshold). 1 barn = 1e-8 Å².

    Args:
        energy_kev: beam energy, keV (> 0).
        atomic_number: Z of the target atom, int in [1, 92].
        threshold_ev: displacement threshold energy T_d, eV (> 0).
        All three broadcast together.
    """
    check_positive("energy_kev", energy_kev, "keV")
    check_in_range("atomic_number", atomic_number, 1, MAX_ATOMIC_NUMBER)
    check_positive("threshold_ev", threshold_ev, "eV")
    dtype = _float(energy_kev, threshold_ev)
    return _cross_section(
        jnp.asarray(energy_kev, dtype) * 1e3,
        jnp.asarray(atomic_number, jnp.int32),
        jnp.asarray(threshold_ev, dtype),
    )


@jax.jit
def _cross_section(e: Array, z_int: Array, t_d: Array) -> Array:
    """σ_d in Å² from the beam energy (eV), Z (int) and threshold (eV)."""
    dtype = e.dtype
    z = z_int.astype(dtype)
    t_m = _max_transfer(e, _mass_u(z_int, dtype))

    beta2 = _beta_squared(e)
    beta = jnp.sqrt(beta2)
    # d = r - 1 computed without cancellation; the double where keeps gradients finite below
    # threshold (d ≤ 0), where log1p and √ would otherwise be evaluated out of their domain.
    d = (t_m - t_d) / t_d
    above = d > 0
    d_safe = jnp.where(above, d, 1.0)
    log_r = jnp.log1p(d_safe)
    sqrt_r_minus_1 = d_safe / (jnp.sqrt(1.0 + d_safe) + 1.0)
    alpha_z = z / FINE_STRUCTURE_INVERSE
    bracket = (
        d_safe
        - beta2 * log_r
        + jnp.pi * alpha_z * beta * (2.0 * sqrt_r_minus_1 - log_r)
    )
    prefactor = _CROSS_SECTION_PREFACTOR_A2 * z**2 * (1.0 - beta2) / beta2**2
    return jnp.where(above, prefactor * bracket, jnp.zeros((), dtype))


def displacement_probability(
    site_dose: Float[ArrayLike, "..."], cross_section: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Probability that an atom is displaced, 1 − exp(−σD) (Poisson in the number of hits).

    Args:
        site_dose: dose received, e⁻/Å² (≥ 0).
        cross_section: displacement cross section σ, Å² (≥ 0), broadcast against the dose.
    """
    check_nonnegative("site_dose", site_dose, "e⁻/Å²")
    check_nonnegative("cross_section", cross_section, "Å²")
    dtype = _float(site_dose, cross_section)
    return _probability(jnp.asarray(site_dose, dtype), jnp.asarray(cross_section, dtype))


@jax.jit
def _probability(dose: Array, sigma: Array) -> Array:
    return -jnp.expm1(-sigma * dose)


def apply_damage(
    key: PRNGKeyArray,
    specimen: Specimen,
    site_dose: Float[ArrayLike, " n"],
    energy_kev: Float[ArrayLike, ""],
) -> tuple[Specimen, Float[Array, " n"]]:
    """Remove knocked-on atoms from the specimen after it received ``site_dose``.

    Each atom of a site is displaced independently with p = 1 − exp(−σD), σ from
    :func:`displacement_cross_section` with the site's element and threshold. A site of c
    atoms loses Binomial(⌊c⌋, p) atoms, plus its fractional part c − ⌊c⌋ with probability p
    (so the expected loss is c·p for fractional counts too). A site whose count reaches 0
    becomes a vacancy (occupancy 0, atom type 1) and stays present. Padding slots and sites
    with occupancy 0 or no atoms are left unchanged. The draw is not differentiable; for
    gradients use the expected loss, ``counts × displacement_probability(dose, σ)``.

    Args:
        key: PRNG key.
        specimen: the specimen, capacity n.
        site_dose: (n,) dose each site received, e⁻/Å² (≥ 0), e.g. from ``dose.site_dose``.
        energy_kev: beam energy, keV (> 0).

    Returns:
        ``(new_specimen, displaced)``: the damaged specimen and the (n,) number of atoms
        removed from each site (float; fractional only for fractional counts).
    """
    check_nonnegative("site_dose", site_dose, "e⁻/Å²")
    check_positive("energy_kev", energy_kev, "keV")
    dtype = specimen.counts.dtype
    dose = jnp.broadcast_to(jnp.asarray(site_dose, dtype), specimen.counts.shape)
    return _apply_damage(key, specimen, dose, jnp.asarray(energy_kev, dtype))


@jax.jit
def _apply_damage(key, specimen: Specimen, site_dose, energy_kev):
    counts = specimen.counts
    dtype = counts.dtype
    dose = site_dose
    z = jnp.where(specimen.present, specimen.atomic_numbers, 1)
    energy_ev = jnp.asarray(energy_kev, dtype) * 1e3
    sigma = _cross_section(energy_ev, z, specimen.displacement_threshold_ev)
    p = jax.lax.stop_gradient(_probability(dose, sigma))
    active = specimen.present & (specimen.occupancies > 0) & (counts > 0)
    p = jnp.where(active, p, 0.0)

    whole = jnp.floor(counts)
    part = counts - whole
    key_whole, key_part = jax.random.split(key)
    lost_whole = jax.random.binomial(key_whole, whole, p, dtype=dtype)
    lost_part = part * jax.random.bernoulli(key_part, p).astype(dtype)
    displaced = jnp.where(active, jnp.clip(lost_whole + lost_part, 0.0, counts), 0.0)

    new_counts = counts - displaced
    emptied = active & (new_counts <= 0)
    new_counts = jnp.where(emptied, 0.0, new_counts)
    damaged = eqx.tree_at(
        lambda s: (s.counts, s.occupancies, s.atom_types),
        specimen,
        (
            new_counts,
            jnp.where(emptied, jnp.zeros((), dtype), specimen.occupancies),
            jnp.where(emptied, VACANCY, specimen.atom_types).astype(specimen.atom_types.dtype),
        ),
    )
    return damaged, displaced


__all__ = [
    "apply_damage",
    "displacement_cross_section",
    "displacement_probability",
    "max_transferred_energy",
]
