"""Point defects and phase domains on a :class:`~stemjax.physics.specimen.Specimen`.

Every function here is pure, takes its ``jax.random`` key first, keeps the specimen's capacity
(so results built with different keys stack under ``jax.vmap``), and can be traced by ``jit``
and ``vmap`` over keys and fractions. Arguments that fix shapes (masks, index pairs, element
symbols, ``max_domains``) are static. Concrete inputs are checked before tracing; traced ones
are passed through.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from stemjax._validation import (
    check_finite,
    check_in_range,
    check_int_at_least,
    check_nonnegative,
    is_concrete,
)
from stemjax.physics.elements import atomic_number
from stemjax.physics.specimen import SUBSTITUTION, VACANCY, Specimen, concatenate

__all__ = [
    "add_point_defects",
    "add_paired_vacancies",
    "add_phase_domains",
    "inside_domains",
    "rotated",
]


def _check_fraction_sum(name_a: str, a, name_b: str, b) -> None:
    if is_concrete((a, b)) and float(np.asarray(a)) + float(np.asarray(b)) > 1.0 + 1e-12:
        raise ValueError(
            f"{name_a} + {name_b} must be <= 1 (they are probabilities of exclusive outcomes); "
            f"got {name_a}={float(np.asarray(a))!r} and {name_b}={float(np.asarray(b))!r}"
        )


def _site_mask(name: str, mask, capacity: int) -> Bool[Array, " n"]:
    mask = jnp.asarray(mask)
    if mask.shape != (capacity,):
        raise ValueError(
            f"{name} must be a boolean mask of shape ({capacity},), one entry per specimen "
            f"slot; got shape {mask.shape}"
        )
    return mask.astype(bool)


def _mark_vacancies(specimen: Specimen, vacant: Bool[Array, " n"]) -> Specimen:
    occupancies = jnp.where(vacant, 0.0, specimen.occupancies).astype(specimen.occupancies.dtype)
    atom_types = jnp.where(vacant, VACANCY, specimen.atom_types).astype(specimen.atom_types.dtype)
    return eqx.tree_at(
        lambda s: (s.occupancies, s.atom_types), specimen, (occupancies, atom_types)
    )


def add_point_defects(
    key: PRNGKeyArray,
    specimen: Specimen,
    *,
    sites,
    vacancy_fraction=0.0,
    substitution_fraction=0.0,
    substitute: str | int | None = None,
) -> Specimen:
    """Turn eligible sites into vacancies or substitutions, independently per site.

    Each present site with ``sites`` True draws u ~ U(0, 1): u < ``vacancy_fraction`` makes it a
    vacancy (occupancy 0, atom type 1, element kept as the missing one); otherwise
    u < ``vacancy_fraction + substitution_fraction`` makes it a substitution (atomic number of
    ``substitute``, atom type 2, other per-site values kept). Other sites are unchanged.

    Args:
        key: PRNG key.
        specimen: the specimen, capacity n.
        sites: (n,) bool, the eligible sites (static shape; may be traced).
        vacancy_fraction: probability in [0, 1] that an eligible site becomes a vacancy.
        substitution_fraction: probability in [0, 1] that it becomes a substitution;
            ``vacancy_fraction + substitution_fraction`` must be ≤ 1.
        substitute: element symbol or Z put on substituted sites; required (static) whenever
            ``substitution_fraction`` may be > 0.

    Returns:
        The specimen with the same capacity.
    """
    check_in_range("vacancy_fraction", vacancy_fraction, 0.0, 1.0)
    check_in_range("substitution_fraction", substitution_fraction, 0.0, 1.0)
    _check_fraction_sum("vacancy_fraction", vacancy_fraction, "substitution_fraction",
                        substitution_fraction)
    if substitute is None:
        if not is_concrete(substitution_fraction) or float(np.asarray(substitution_fraction)) > 0:
            raise ValueError(
                "substitute must be an element symbol (e.g. 'W') or atomic number when "
                f"substitution_fraction may be > 0; got substitute=None and "
                f"substitution_fraction={substitution_fraction!r}"
            )
        z_new = None
    else:
        z_new = atomic_number(substitute, "substitute")
    eligible = _site_mask("sites", sites, specimen.capacity)
    dtype = specimen.counts.dtype
    return _point_defects(
        key, specimen, eligible, jnp.asarray(vacancy_fraction, dtype),
        jnp.asarray(substitution_fraction, dtype), z_new,
    )


@eqx.filter_jit
def _point_defects(key, specimen, eligible, f_vac, f_sub, z_new):
    u = jax.random.uniform(key, (specimen.capacity,), f_vac.dtype)
    return point_defects_from_uniform(u, specimen, eligible, f_vac, f_sub, z_new)


def point_defects_from_uniform(u, specimen, eligible, f_vac, f_sub, z_new):
    """The rule of :func:`add_point_defects` given its (n,) uniform draws ``u`` and the
    substitute's atomic number ``z_new`` (static, or None); no validation."""
    eligible = eligible & specimen.present
    vacant = eligible & (u < f_vac)
    substituted = eligible & ~vacant & (u < f_vac + f_sub)
    specimen = _mark_vacancies(specimen, vacant)
    if z_new is not None:  # static
        numbers = jnp.where(substituted, z_new, specimen.atomic_numbers)
        types = jnp.where(substituted, SUBSTITUTION, specimen.atom_types)
        specimen = eqx.tree_at(
            lambda s: (s.atomic_numbers, s.atom_types),
            specimen,
            (numbers.astype(jnp.int32), types.astype(jnp.int32)),
        )
    return specimen


def add_paired_vacancies(
    key: PRNGKeyArray,
    specimen: Specimen,
    *,
    pairs,
    single_fraction=0.0,
    double_fraction=0.0,
) -> Specimen:
    """Single and double vacancies on columns made of two sites (e.g. the top and bottom
    chalcogen of a TMD monolayer).

    Each pair independently draws u ~ U(0, 1): u < ``double_fraction`` removes both sites;
    otherwise u < ``double_fraction + single_fraction`` removes one of the two, chosen with
    equal probability. Removed sites get occupancy 0 and atom type 1; sites not present are
    never marked.

    Args:
        key: PRNG key.
        specimen: the specimen, capacity n.
        pairs: (m, 2) int site indices, static (a NumPy array or nested list); no site may
            appear twice.
        single_fraction: probability in [0, 1] that a pair loses exactly one site.
        double_fraction: probability in [0, 1] that a pair loses both sites; the two
            fractions must sum to ≤ 1.

    Returns:
        The specimen with the same capacity.
    """
    check_in_range("single_fraction", single_fraction, 0.0, 1.0)
    check_in_range("double_fraction", double_fraction, 0.0, 1.0)
    _check_fraction_sum("single_fraction", single_fraction, "double_fraction", double_fraction)
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"pairs must be an integer array of shape (m, 2); got {pairs.shape}")
    n = specimen.capacity
    if pairs.size and (pairs.min() < 0 or pairs.max() >= n):
        raise ValueError(f"pairs must hold site indices in [0, {n - 1}]; got {pairs.min()}…"
                         f"{pairs.max()}")
    if np.unique(pairs).size != pairs.size:
        raise ValueError("pairs must not name any site twice")

    dtype = specimen.counts.dtype
    return _paired_vacancies(
        key, specimen, jnp.asarray(pairs, jnp.int32), jnp.asarray(single_fraction, dtype),
        jnp.asarray(double_fraction, dtype),
    )


@eqx.filter_jit
def _paired_vacancies(key, specimen, pairs, f_single, f_double):
    # (1-D draws: multi-dimensional threefry shapes compile several times slower on CPU)
    u = jax.random.uniform(key, (2 * pairs.shape[0],), f_single.dtype).reshape(-1, 2)
    return paired_vacancies_from_uniform(u, specimen, pairs, f_single, f_double)


def paired_vacancies_from_uniform(u, specimen, pairs, f_single, f_double):
    """The rule of :func:`add_paired_vacancies` given its (m, 2) uniform draws ``u``: u[:, 0]
    picks the kind of vacancy, u[:, 1] < 1/2 the side of a single one; no validation."""
    double = u[:, 0] < f_double
    single = ~double & (u[:, 0] < f_double + f_single)
    first_side = u[:, 1] < 0.5
    remove_first = double | (single & first_side)
    remove_second = double | (single & ~first_side)
    vacant = (
        jnp.zeros(specimen.capacity, bool)
        .at[pairs[:, 0]].set(remove_first)
        .at[pairs[:, 1]].set(remove_second)
    )
    return _mark_vacancies(specimen, vacant & specimen.present)


def inside_domains(xy: Float[Array, "n 2"], domains: Float[Array, "d 3"]) -> Bool[Array, " n"]:
    """(n,) True where a point lies strictly inside any disc of ``domains``.

    Args:
        xy: (n, 2) points (x, y), Å.
        domains: (d, 3) discs (x, y, radius), Å; radius 0 never contains a point.
    """
    d2 = jnp.sum((xy[:, None, :] - domains[None, :, :2]) ** 2, axis=-1)
    return jnp.any(d2 < domains[None, :, 2] ** 2, axis=-1)


def add_phase_domains(
    key: PRNGKeyArray,
    matrix: Specimen,
    second: Specimen,
    *,
    density,
    radius,
    max_domains: int = 8,
) -> Specimen:
    """Embed disc-shaped domains of ``second`` in ``matrix`` (same cell).

    The number of domains is Poisson(``density`` × cell area), clipped to ``max_domains``;
    centres are uniform over the cell's (x, y) extent and all discs have ``radius`` (discs are
    not wrapped at the cell edge and may overlap). Sites of ``second`` inside a disc keep their
    ``present`` flag and get phase 1; sites of ``matrix`` inside a disc are removed
    (``present`` False); outside the discs it is the reverse, with matrix sites labelled phase 0.
    The result holds the matrix slots, then the second slots (capacity n_matrix + n_second),
    and its ``domains`` (``max_domains``, 3) are the drawn discs, unused slots all zeros
    (radius 0; the input specimens' own ``domains`` are dropped), so ``Specimen.phase_map``
    rasterises them. The clipped Poisson count is drawn by inverting its CDF.

    Args:
        key: PRNG key.
        matrix: the surrounding specimen.
        second: the specimen shown inside the domains (e.g. ``rotated(matrix, 30.0)`` or another
            lattice) with the same cell (x, y) extent.
        density: mean number of domain centres per nm² of cell area (1 nm² = 100 Å²), ≥ 0.
        radius: domain radius, Å, ≥ 0.
        max_domains: number of domain slots (static), ≥ 1.
    """
    check_nonnegative("density", density, "per nm²")
    check_nonnegative("radius", radius, "Å")
    max_domains = check_int_at_least("max_domains", max_domains, 1)
    if matrix.cell.shape != (3,) or second.cell.shape != (3,):
        raise ValueError("matrix and second must be single specimens with cell of shape (3,); "
                         f"got {matrix.cell.shape} and {second.cell.shape}")
    if is_concrete((matrix.cell, second.cell)) and not np.allclose(
        np.asarray(matrix.cell[:2]), np.asarray(second.cell[:2]), rtol=1e-5, atol=1e-4
    ):
        raise ValueError(
            "second must have the same cell (x, y) extent as matrix; got "
            f"matrix.cell={np.asarray(matrix.cell)} Å and second.cell={np.asarray(second.cell)} Å"
        )

    dtype = matrix.counts.dtype
    return _phase_domains(
        key, matrix, second, jnp.asarray(density, dtype), jnp.asarray(radius, dtype), max_domains
    )


def _clipped_poisson(u, mean, size: int):
    """min(N, size) for N ~ Poisson(mean), by inversion of its CDF with one uniform ``u``."""
    k = jnp.arange(size, dtype=mean.dtype)
    log_pmf = jax.scipy.special.xlogy(k, mean) - mean - jax.scipy.special.gammaln(k + 1.0)
    return jnp.sum(u > jnp.cumsum(jnp.exp(log_pmf)))


@eqx.filter_jit
def _phase_domains(key, matrix, second, density, radius, max_domains: int):
    dtype = density.dtype
    u = jax.random.uniform(key, (2 * max_domains + 1,), dtype)
    area_nm2 = matrix.cell[0] * matrix.cell[1] / 100.0
    number = _clipped_poisson(u[0], density * area_nm2, max_domains)
    used = jnp.arange(max_domains) < number
    centres = u[1:].reshape(max_domains, 2) * matrix.cell[:2]
    domains = jnp.where(
        used[:, None], jnp.concatenate([centres, jnp.broadcast_to(radius, (max_domains, 1))], 1),
        0.0,
    ).astype(dtype)

    in_matrix = inside_domains(matrix.atom_xy, domains)
    in_second = inside_domains(second.atom_xy, domains)
    outer = eqx.tree_at(
        lambda s: (s.present, s.phases, s.domains),
        matrix,
        (matrix.present & ~in_matrix, jnp.zeros_like(matrix.phases), domains[:0]),
    )
    inner = eqx.tree_at(
        lambda s: (s.present, s.phases, s.domains),
        second,
        (second.present & in_second, jnp.ones_like(second.phases), domains[:0]),
    )
    joined = concatenate(outer, inner)
    return eqx.tree_at(lambda s: s.domains, joined, domains)


def rotated(specimen: Specimen, angle_deg) -> Specimen:
    """A copy of ``specimen`` rotated in the image plane about its cell centre.

    Site (x, y) positions and domain centres turn counter-clockwise by ``angle_deg`` about
    (cell_x / 2, cell_y / 2) and are wrapped back into [0, cell_x) × [0, cell_y), so the copy
    covers the same cell (lattice rows do not match across the cell edge unless the angle
    is commensurate). Depths, elements and all other per-site values are unchanged.

    Args:
        specimen: the specimen.
        angle_deg: rotation angle, degrees (scalar; may be traced).
    """
    check_finite("angle_deg", angle_deg)
    return _rotated(specimen, jnp.asarray(angle_deg, specimen.positions.dtype))


@eqx.filter_jit
def _rotated(specimen: Specimen, angle_deg) -> Specimen:
    dtype = specimen.positions.dtype
    theta = jnp.deg2rad(angle_deg)
    c, s = jnp.cos(theta), jnp.sin(theta)
    rotation = jnp.array([[c, -s], [s, c]], dtype)
    size = specimen.cell[:2]
    centre = 0.5 * size

    def turn(xy):
        xy = jnp.mod((xy - centre) @ rotation.T + centre, size)
        return jnp.where(xy >= size, xy - size, xy)  # float rounding of a tiny negative

    positions = specimen.positions.at[:, :2].set(turn(specimen.positions[:, :2]))
    domains = specimen.domains.at[:, :2].set(turn(specimen.domains[:, :2]))
    return eqx.tree_at(lambda t: (t.positions, t.domains), specimen, (positions, domains))
