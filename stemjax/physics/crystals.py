"""Specimen builders: perovskites, SiGe, GaN, 2H TMD monolayers and fcc particles on a support.

Every builder returns a :class:`~stemjax.physics.specimen.Specimen` of atomic columns seen
along the beam (z), with x, y in the image plane, all lengths in Å. Capacity (number of slots)
depends only on the static arguments (material, cells, thickness, radius, cell), never on the
random draws, so specimens built with different keys stack under ``jax.vmap``. Builders that
draw random numbers take the key first; with the static arguments held fixed (e.g. through
``functools.partial``) they can be traced by ``jax.jit`` and ``jax.vmap`` over keys and over the
fractions (``germanium_fraction``, defect fractions, support thickness and density).

Column geometries of SiGe [110] and GaN [11-20] are derived at first use by
:func:`project_columns`, which wraps the 3D crystal into the projected cell and groups atoms
by their (x, y); nothing about these projections is typed in by hand.

Lattice parameters are standard room-temperature literature values, Å:
  SrTiO3 cubic a = 3.905; BaTiO3 tetragonal a = 3.992, c = 4.036 (handbook values, e.g. the
    ICSD; the Ti off-centring along c is ignored: it does not move the projected columns);
  Si 5.431, Ge 5.658 (diamond; alloys by Vegard's law, which overestimates the true
    Si(1-x)Ge(x) lattice parameter by at most ~0.01 Å, Dismukes et al., J. Phys. Chem. 68,
    3021 (1964));
  GaN wurtzite a = 3.189, c = 5.185 (Leszczynski et al., Appl. Phys. Lett. 69, 73 (1996)),
    u = 0.377 (Schulz & Thiemann, Solid State Commun. 23, 815 (1977));
  2H MoS2 3.160 (Schönfeld, Huang & Moss, Acta Cryst. B39, 404 (1983)), WS2 3.153 and
    WSe2 3.282 (Schutte, de Boer & Jellinek, J. Solid State Chem. 70, 207 (1987)), MoSe2
    3.288 (bulk X-ray values; monolayers differ by < 0.01 Å);
  fcc Au 4.078, Pt 3.924, Pd 3.891, Ag 4.086 (e.g. Wyckoff, Crystal Structures, vol. 1).

Debye–Waller factors: Si 0.46 Å² and Ge ≈ 0.57 Å² at 293 K (Peng, Ren, Dudarev & Whelan,
Acta Cryst. A52, 456 (1996); for Si, 300 K powder refinements give U ≈ 0.0058–0.0060 Å²,
B = 8π²U ≈ 0.46–0.47 Å²).
Everything else gets the documented generic :data:`GENERIC_DEBYE_WALLER` = 0.5 Å², a typical
room-temperature value for inorganic solids, because per-site values we are sure of are lacking.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from stemjax._validation import (
    check_in_range,
    check_int_at_least,
    check_nonnegative,
    check_positive,
    is_concrete,
)
from stemjax.physics.defects import paired_vacancies_from_uniform, point_defects_from_uniform
from stemjax.physics.elements import ATOMIC_MASSES_U, atomic_number
from stemjax.physics.specimen import (
    DEFAULT_DISPLACEMENT_THRESHOLD_EV,
    Specimen,
    concatenate,
    make_specimen,
)

__all__ = [
    "GENERIC_DEBYE_WALLER",
    "PEROVSKITES",
    "TMD_MONOLAYERS",
    "FCC_LATTICE_PARAMETERS",
    "ProjectedColumns",
    "project_columns",
    "perovskite",
    "sige",
    "gan",
    "mx2_monolayer",
    "nanoparticle_on_support",
]

GENERIC_DEBYE_WALLER = 0.5
"""Debye–Waller B used where no cited value is given, Å²."""

PEROVSKITES = {
    # material: (A element, B element, a (in-plane), c (along the beam)), Å
    "SrTiO3": ("Sr", "Ti", 3.905, 3.905),
    "BaTiO3": ("Ba", "Ti", 3.992, 4.036),
}
"""ABO3 perovskites known to :func:`perovskite`."""

SI_LATTICE_PARAMETER, GE_LATTICE_PARAMETER = 5.431, 5.658
"""Diamond-structure lattice parameters of Si and Ge, Å."""

GAN_A, GAN_C, GAN_U = 3.189, 5.185, 0.377
"""Wurtzite GaN lattice parameters a, c (Å) and internal parameter u."""

TMD_MONOLAYERS = {
    # material: (metal, chalcogen, a (Å), chalcogen height above/below the metal plane (Å))
    "MoS2": ("Mo", "S", 3.160, 1.56),
    "WS2": ("W", "S", 3.153, 1.56),
    "MoSe2": ("Mo", "Se", 3.288, 1.67),
    "WSe2": ("W", "Se", 3.282, 1.67),
}
"""2H transition-metal dichalcogenide monolayers known to :func:`mx2_monolayer`.

Chalcogen heights are approximate: bulk X-ray structures give about 1.58 Å (S, MoS2) and
1.67 Å (Se, MoSe2/WSe2), relaxed monolayer DFT about 1.56–1.57 Å (S); the uncertainty is
±0.03 Å, far below the depth resolution of a STEM image. WS2 uses the S value of MoS2."""

TMD_VACUUM_MARGIN = 1.5
"""Space above the top and below the bottom chalcogen plane in the monolayer cell, Å. The
cell z extent 2·height + 2·margin (6.12 Å for MoS2) is close to the bulk layer repeat c/2
(6.15 Å)."""

MOS2_SULFUR_THRESHOLD_EV = 6.9
"""Knock-on displacement threshold of S in monolayer MoS2, eV (Komsa et al., Phys. Rev. Lett.
109, 035503 (2012))."""

FCC_LATTICE_PARAMETERS = {"Au": 4.078, "Pt": 3.924, "Pd": 3.891, "Ag": 4.086}
"""fcc lattice parameters known to :func:`nanoparticle_on_support`, Å."""

_DEBYE_WALLER = {"Si": 0.46, "Ge": 0.57}
_AVOGADRO = 6.022_140_76e23
_CM3_PER_A3 = 1e-24


# --------------------------------------------------------------------------------------------
# helpers


def _choose(name: str, value, table: dict):
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{name} must be one of {sorted(table)}; got {value!r}")
    return table[value]


def _check_cells(cells) -> tuple[int, int]:
    if not isinstance(cells, (tuple, list)) or len(cells) != 2:
        raise ValueError(f"cells must be a pair (nx, ny) of integers >= 1; got {cells!r}")
    return check_int_at_least("cells[0]", cells[0], 1), check_int_at_least("cells[1]", cells[1], 1)


def _static_float(name: str, value) -> float:
    if not is_concrete(value) or np.ndim(value) != 0:
        raise ValueError(f"{name} fixes the specimen's capacity and must be a concrete scalar "
                         f"(a Python float, not a traced value); got {value!r}")
    return float(value)


def _tile(motif_xy: np.ndarray, cell_xy, cells: tuple[int, int]) -> np.ndarray:
    """(nx·ny·k, 2) copies of the (k, 2) motif over an nx × ny block of cells, cell-major."""
    nx, ny = cells
    iy, ix = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    shifts = np.stack([ix.ravel() * cell_xy[0], iy.ravel() * cell_xy[1]], axis=1)
    return (shifts[:, None, :] + np.asarray(motif_xy)[None, :, :]).reshape(-1, 2)


class ProjectedColumns(NamedTuple):
    """Atomic columns of a crystal seen along a beam direction.

    Attributes:
        xy: (k, 2) column positions in [0, cell_x) × [0, cell_y), Å.
        z: (k,) depth of the column's first atom in [0, period), Å.
        basis_index: (k,) index of the basis atom that makes up the column.
        atoms_per_period: (k,) number of atoms in the column per beam period.
    """

    xy: np.ndarray
    z: np.ndarray
    basis_index: np.ndarray
    atoms_per_period: np.ndarray


def project_columns(lattice, fractional, x_axis, y_axis, cell_xy, period) -> ProjectedColumns:
    """Group the atoms of a 3D crystal into columns along the beam (NumPy, not traced).

    The image axes are ``x_axis`` and ``y_axis`` (orthogonal, Cartesian) and the beam runs along
    x × y, so (x, y, beam) is right-handed. The box ``cell_xy`` × ``period`` must be a periodic
    cell of the crystal in that frame (its edges lattice vectors); every atom is wrapped into
    it and atoms sharing (x, y) to 1e-4 Å form one column. Columns are sorted by x, then y.

    Args:
        lattice: (3, 3) lattice vectors as rows, Cartesian, Å.
        fractional: (m, 3) basis atoms in fractional coordinates of ``lattice``.
        x_axis, y_axis: (3,) Cartesian directions of the image axes (any length).
        cell_xy: (2,) projected cell along x and y, Å.
        period: repeat distance along the beam, Å.

    Raises:
        ValueError: if the axes are not orthogonal, or the box is not a cell of the crystal (a
            column would hold atoms of different basis sites, or the atom count is wrong).
    """
    lattice = np.asarray(lattice, float)
    basis = np.atleast_2d(np.asarray(fractional, float))
    ex, ey = np.asarray(x_axis, float), np.asarray(y_axis, float)
    ex, ey = ex / np.linalg.norm(ex), ey / np.linalg.norm(ey)
    if abs(ex @ ey) > 1e-9:
        raise ValueError(f"x_axis and y_axis must be orthogonal; got {x_axis} and {y_axis}")
    frame = np.stack([ex, ey, np.cross(ex, ey)])  # rows: image x, image y, beam
    box = np.array([cell_xy[0], cell_xy[1], period], float)

    # Enough lattice translations to hit every point of the box at least once.
    reach = np.linalg.norm(box) * np.abs(np.linalg.inv(lattice)).sum(axis=0).max()
    span = np.arange(-int(np.ceil(reach)) - 1, int(np.ceil(reach)) + 2)
    shifts = np.stack(np.meshgrid(span, span, span, indexing="ij"), -1).reshape(-1, 1, 3)
    cart = (shifts + basis[None]) @ lattice  # (t, m, 3)
    local = cart @ frame.T
    wrapped = np.round(local / box, 8) % 1.0 * box
    index = np.broadcast_to(np.arange(len(basis)), wrapped.shape[:2]).ravel()
    wrapped = wrapped.reshape(-1, 3)
    _, first = np.unique(np.round(wrapped, 4), axis=0, return_index=True)
    atoms, index = wrapped[first], index[first]  # one copy of each distinct atom

    expected = len(basis) * np.prod(box) / abs(np.linalg.det(lattice))
    if abs(len(atoms) - expected) > 1e-3 * expected:
        raise ValueError(
            f"cell_xy × period = {box} Å is not a periodic cell of this crystal along the beam "
            f"({len(atoms)} distinct atoms in the box, {expected:.3f} expected)"
        )
    _, keep, which = np.unique(
        np.round(atoms[:, :2], 4), axis=0, return_index=True, return_inverse=True
    )
    columns, which = atoms[keep, :2], which.ravel()
    z = np.array([atoms[which == c, 2].min() for c in range(len(columns))])
    n_atoms = np.bincount(which, minlength=len(columns))
    kinds = [np.unique(index[which == c]) for c in range(len(columns))]
    if any(len(k) != 1 for k in kinds):
        raise ValueError("some projected columns mix atoms of different basis sites; "
                         "choose a cell in which each column holds one kind of atom")
    order = np.lexsort((columns[:, 1], columns[:, 0]))
    return ProjectedColumns(
        xy=columns[order],
        z=z[order],
        basis_index=np.array([k[0] for k in kinds])[order],
        atoms_per_period=n_atoms[order],
    )


@functools.cache
def _diamond_110() -> ProjectedColumns:
    """Diamond structure (a = 1) along [110]: x along [1-10], y along [001]."""
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    basis = np.concatenate([fcc, fcc + 0.25])
    half = 1 / math.sqrt(2)
    return project_columns(np.eye(3), basis, (1, -1, 0), (0, 0, 1), (half, 1.0), half)


@functools.cache
def _wurtzite_11_20(a: float, c: float, u: float) -> ProjectedColumns:
    """Wurtzite along [11-20]: x along [1-100], y along [0001]; basis 0, 1 cation, 2, 3 anion."""
    a1, a2 = np.array([a, 0, 0]), np.array([-a / 2, a * math.sqrt(3) / 2, 0])
    lattice = np.stack([a1, a2, [0, 0, c]])
    basis = [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, u], [2 / 3, 1 / 3, 0.5 + u]]
    return project_columns(lattice, basis, a1 - a2, (0, 0, 1), (math.sqrt(3) * a, c), a)


def _specimen(positions, atomic_numbers, cell, **per_site) -> Specimen:
    """``make_specimen`` with the builders' default Debye–Waller factor."""
    per_site.setdefault("debye_waller", GENERIC_DEBYE_WALLER)
    return make_specimen(positions, atomic_numbers, cell, **per_site)


def _drop_empty(specimen: Specimen) -> Specimen:
    """Columns whose counts were drawn as 0 are not part of the specimen."""
    return eqx.tree_at(lambda s: s.present, specimen, specimen.present & (specimen.counts > 0))


def _float():
    return jnp.result_type(float)


# --------------------------------------------------------------------------------------------
# builders


def perovskite(material: str = "SrTiO3", cells=(8, 8), thickness: float = 100.0) -> Specimen:
    """An ABO3 perovskite along [001], as atomic columns.

    Per projected cell (a × a): the A column at (0, 0) (z = 0), the B column at (a/2, a/2)
    (z = c/2) and, as a separate site at the same (x, y), its apical O column (z = 0); O-only
    columns at (a/2, 0) and (0, a/2) (z = c/2). Five sites per cell, phase 0, pristine.

    Args:
        material: one of :data:`PEROVSKITES` ("SrTiO3" cubic, "BaTiO3" tetragonal, c along
            the beam).
        cells: (nx, ny) number of unit cells along x and y (static ints ≥ 1).
        thickness: specimen thickness along the beam, Å (static, > 0); every column holds
            max(1, round(thickness / c)) atoms, and the cell z extent is that many c.

    Returns:
        Specimen with 5·nx·ny sites and cell (nx·a, ny·a, counts·c) Å.
    """
    a_element, b_element, a, c = _choose("material", material, PEROVSKITES)
    nx, ny = _check_cells(cells)
    check_positive("thickness", thickness, "Å")
    layers = max(1, round(_static_float("thickness", thickness) / c))
    za, zb, zo = (atomic_number(e) for e in (a_element, b_element, "O"))
    motif_xy = np.array([[0, 0], [0.5, 0.5], [0.5, 0.5], [0.5, 0], [0, 0.5]]) * a
    motif_z = np.array([0, 0.5, 0, 0.5, 0.5]) * c
    xy = _tile(motif_xy, (a, a), (nx, ny))
    z = np.tile(motif_z, nx * ny)
    return _specimen(
        np.column_stack([xy, z]),
        np.tile([za, zb, zo, zo, zo], nx * ny),
        (nx * a, ny * a, layers * c),
        counts=float(layers),
        debye_waller=GENERIC_DEBYE_WALLER,
    )


def sige(
    key: PRNGKeyArray, germanium_fraction=0.2, cells=(6, 4), thickness: float = 100.0
) -> Specimen:
    """A random Si(1−x)Ge(x) diamond-structure alloy along [110] (dumbbell projection).

    Lattice parameter a = (1 − x)·5.431 + x·5.658 Å (Vegard's law). Projected cell a/√2 (x,
    along [1-10]) × a (y, along [001]) with four columns at (0, 0), (0, a/4), (a/(2√2), a/2),
    (a/(2√2), 3a/4), i.e. dumbbells of projected length a/4; the beam period is a/√2 with one
    atom per column per period. Each column holds N = max(1, round(thickness·√2 / a)) atoms; the
    number of Ge atoms is Binomial(N, x) from ``key`` and the rest are Si. Each column is two
    sites at the same position, Si then Ge (``present`` is False for a site whose count is 0).
    The alloy is pristine (atom type 0) and phase 0; z is the depth of the column's first
    lattice position whatever its species.

    Args:
        key: PRNG key for the alloy draw.
        germanium_fraction: x in [0, 1] (may be traced).
        cells: (nx, ny) projected cells along x and y (static ints ≥ 1).
        thickness: thickness along the beam, Å (static, > 0).

    Returns:
        Specimen with 8·nx·ny sites, cell (nx·a/√2, ny·a, N·a/√2) Å.
    """
    check_in_range("germanium_fraction", germanium_fraction, 0.0, 1.0)
    nx, ny = _check_cells(cells)
    check_positive("thickness", thickness, "Å")
    thickness = _static_float("thickness", thickness)
    return _sige(key, jnp.asarray(germanium_fraction, _float()), (nx, ny), thickness)


@functools.partial(jax.jit, static_argnames=("cells", "thickness"))
def _sige(key, x, cells: tuple[int, int], thickness: float) -> Specimen:
    nx, ny = cells
    geometry = _diamond_110()
    half = 1 / math.sqrt(2)
    a = SI_LATTICE_PARAMETER + x * (GE_LATTICE_PARAMETER - SI_LATTICE_PARAMETER)
    period = a * half
    atoms = jnp.maximum(1.0, jnp.round(thickness / period))
    most = max(1, round(thickness / (SI_LATTICE_PARAMETER * half)))  # static bound on atoms

    xy_unit = _tile(geometry.xy, (half, 1.0), (nx, ny))  # in units of a
    z_unit = np.tile(geometry.z, nx * ny)
    columns = xy_unit.shape[0]
    # Binomial(atoms, x) per column as a sum of Bernoulli draws over the first ``atoms`` slots.
    u = jax.random.uniform(key, (columns * most,), x.dtype).reshape(columns, most)  # 1-D draw
    germanium = jnp.sum((u < x) & (jnp.arange(most) < atoms), axis=1).astype(x.dtype)
    counts = jnp.stack([atoms - germanium, germanium], axis=1).reshape(-1)
    positions = a * jnp.asarray(np.repeat(np.column_stack([xy_unit, z_unit]), 2, axis=0), x.dtype)
    specimen = _specimen(
        positions,
        np.tile([atomic_number("Si"), atomic_number("Ge")], columns),
        jnp.stack([nx * a * half, ny * a, atoms * period]),
        counts=counts,
        debye_waller=np.tile([_DEBYE_WALLER["Si"], _DEBYE_WALLER["Ge"]], columns),
    )
    return _drop_empty(specimen)


def gan(cells=(4, 4), thickness: float = 100.0) -> Specimen:
    """Wurtzite GaN along [11-20], as atomic columns.

    Projected cell √3·a (x, along [1-100]) × c (y, along [0001]); beam period a. The column
    positions come from :func:`project_columns` applied to the 3D wurtzite lattice: eight
    columns per cell, four Ga and four N, each with one atom per period. Each Ga column has
    its nearest N column (the projected "dumbbell") at √((a/(2√3))² + ((½ − u)c)²) ≈ 1.12
    Å, tilted from [0001], and a second N column straight along [0001] at u·c ≈ 1.95 Å. Sites
    are sorted by x then y within a cell.

    Args:
        cells: (nx, ny) projected cells along x and y (static ints ≥ 1).
        thickness: thickness along the beam, Å (static, > 0); each column holds
            max(1, round(thickness / a)) atoms.

    Returns:
        Specimen with 8·nx·ny sites, cell (nx·√3·a, ny·c, counts·a) Å, phase 0, pristine.
    """
    nx, ny = _check_cells(cells)
    check_positive("thickness", thickness, "Å")
    layers = max(1, round(_static_float("thickness", thickness) / GAN_A))
    geometry = _wurtzite_11_20(GAN_A, GAN_C, GAN_U)
    cell_xy = (math.sqrt(3) * GAN_A, GAN_C)
    xy = _tile(geometry.xy, cell_xy, (nx, ny))
    z = np.tile(geometry.z, nx * ny)
    numbers = np.where(geometry.basis_index < 2, atomic_number("Ga"), atomic_number("N"))
    return _specimen(
        np.column_stack([xy, z]),
        np.tile(numbers, nx * ny),
        (nx * cell_xy[0], ny * cell_xy[1], layers * GAN_A),
        counts=float(layers) * np.tile(geometry.atoms_per_period, nx * ny),
        debye_waller=GENERIC_DEBYE_WALLER,
    )


def mx2_monolayer(
    key: PRNGKeyArray,
    material: str = "MoS2",
    cells=(12, 7),
    dopant: str | int | None = None,
    dopant_fraction=0.0,
    single_vacancy_fraction=0.0,
    double_vacancy_fraction=0.0,
) -> Specimen:
    """A 2H (trigonal-prismatic) MX2 monolayer seen along its normal, with dopants and
    chalcogen vacancies.

    Rectangular cell a (x, along a zigzag row) × √3·a (y). Per cell, in slot order: metals at
    (0, 0) and (a/2, √3a/2); chalcogen columns at (a/2, √3a/6) and (0, 2√3a/3), each as two
    sites, top (z = m) then bottom (z = m + 2h), around the metal plane at z = m + h (h the
    chalcogen height, m = :data:`TMD_VACUUM_MARGIN`); 6 sites per cell, counts 1 each. The
    projected metal–chalcogen distance is a/√3. The cell z extent is 2h + 2m.

    Defects (drawn from ``key``, via :mod:`stemjax.physics.defects`): each metal site becomes
    a ``dopant`` substitution (atom type 2) with probability ``dopant_fraction``; each
    chalcogen column independently loses both atoms with probability
    ``double_vacancy_fraction``, or else one of its two (top or bottom at random) with
    probability ``single_vacancy_fraction`` (occupancy 0, atom type 1).

    Displacement thresholds: S in MoS2 6.9 eV (Komsa et al., PRL 109, 035503 (2012)); the
    chalcogens of WS2, MoSe2, WSe2 and all metal and dopant sites use
    ``DEFAULT_DISPLACEMENT_THRESHOLD_EV`` (20 eV), for want of a measured value we are sure of.
    Debye–Waller: generic 0.5 Å².

    Args:
        key: PRNG key for the defects.
        material: one of :data:`TMD_MONOLAYERS` ("MoS2", "WS2", "MoSe2", "WSe2").
        cells: (nx, ny) rectangular cells along x and y (static ints ≥ 1).
        dopant: element symbol or Z substituted on metal sites (e.g. "V", "Re", "Nb", "W");
            required when ``dopant_fraction`` > 0.
        dopant_fraction: probability in [0, 1] per metal site (may be traced).
        single_vacancy_fraction: probability in [0, 1] per chalcogen column (may be traced).
        double_vacancy_fraction: probability in [0, 1] per chalcogen column (may be traced);
            the two vacancy fractions must sum to ≤ 1.

    Returns:
        Specimen with 6·nx·ny sites and cell (nx·a, ny·√3a, 2h + 2m) Å.
    """
    metal, chalcogen, a, height = _choose("material", material, TMD_MONOLAYERS)
    nx, ny = _check_cells(cells)
    check_in_range("dopant_fraction", dopant_fraction, 0.0, 1.0)
    check_in_range("single_vacancy_fraction", single_vacancy_fraction, 0.0, 1.0)
    check_in_range("double_vacancy_fraction", double_vacancy_fraction, 0.0, 1.0)
    if is_concrete((single_vacancy_fraction, double_vacancy_fraction)) and (
        float(single_vacancy_fraction) + float(double_vacancy_fraction) > 1.0
    ):
        raise ValueError(
            "single_vacancy_fraction + double_vacancy_fraction must be <= 1; got "
            f"{float(single_vacancy_fraction)!r} + {float(double_vacancy_fraction)!r}"
        )
    if dopant is None:
        if not is_concrete(dopant_fraction) or float(dopant_fraction) > 0:
            raise ValueError(
                "dopant must be an element symbol (e.g. 'V', 'Re', 'Nb', 'W') when "
                f"dopant_fraction may be > 0; got dopant=None, dopant_fraction={dopant_fraction!r}"
            )
    else:
        atomic_number(dopant, "dopant")

    specimen = _mx2_pristine(material, nx, ny)
    if dopant is None and all(
        is_concrete(f) and float(f) == 0.0
        for f in (single_vacancy_fraction, double_vacancy_fraction)
    ):
        return specimen  # nothing to draw
    dtype = _float()
    return _mx2_defects(
        key, specimen, jnp.asarray(dopant_fraction, dtype),
        jnp.asarray(single_vacancy_fraction, dtype), jnp.asarray(double_vacancy_fraction, dtype),
        dopant,
    )


def _mx2_sites(n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """(n,) metal-site mask and (m, 2) (top, bottom) chalcogen site pairs, 6 sites per cell."""
    is_metal = np.tile([True, True, False, False, False, False], n_cells)
    first = 6 * np.arange(n_cells)
    pairs = np.concatenate([np.stack([first + 2, first + 3], 1),
                            np.stack([first + 4, first + 5], 1)])
    return is_metal, pairs


def _mx2_pristine(material: str, nx: int, ny: int):
    """The defect-free monolayer (see :func:`mx2_monolayer`)."""
    metal, chalcogen, a, height = TMD_MONOLAYERS[material]
    root3 = math.sqrt(3)
    m = TMD_VACUUM_MARGIN
    motif = np.array([
        [0.0, 0.0, m + height],
        [a / 2, root3 * a / 2, m + height],
        [a / 2, root3 * a / 6, m],
        [a / 2, root3 * a / 6, m + 2 * height],
        [0.0, 2 * root3 * a / 3, m],
        [0.0, 2 * root3 * a / 3, m + 2 * height],
    ])
    n_cells = nx * ny
    xy = _tile(motif[:, :2], (a, root3 * a), (nx, ny))
    z = np.tile(motif[:, 2], n_cells)
    zm, zx = atomic_number(metal), atomic_number(chalcogen)
    is_metal, _ = _mx2_sites(n_cells)
    x_threshold = (MOS2_SULFUR_THRESHOLD_EV if material == "MoS2"
                   else DEFAULT_DISPLACEMENT_THRESHOLD_EV)
    specimen = _specimen(
        np.column_stack([xy, z]),
        np.where(is_metal, zm, zx),
        (nx * a, ny * root3 * a, 2 * height + 2 * m),
        debye_waller=GENERIC_DEBYE_WALLER,
        displacement_threshold_ev=np.where(is_metal, DEFAULT_DISPLACEMENT_THRESHOLD_EV,
                                           x_threshold),
    )
    return specimen


@functools.partial(jax.jit, static_argnums=(5,))
def _mx2_defects(key, specimen, dopant_fraction, single_fraction, double_fraction, dopant):
    # The rules of defects.add_point_defects (metal sites) and add_paired_vacancies
    # (chalcogen columns), fed from one 1-D draw (one threefry call compiles much faster).
    is_metal, pairs = _mx2_sites(specimen.capacity // 6)
    n, m = specimen.capacity, pairs.shape[0]
    u = jax.random.uniform(key, (n + 2 * m,), dopant_fraction.dtype)
    if dopant is not None:
        specimen = point_defects_from_uniform(
            u[:n], specimen, jnp.asarray(is_metal), jnp.zeros_like(dopant_fraction),
            dopant_fraction, atomic_number(dopant),
        )
    return paired_vacancies_from_uniform(
        u[n:].reshape(m, 2), specimen, jnp.asarray(pairs), single_fraction, double_fraction
    )


@functools.cache
def _fcc_sphere_columns(a: float, radius: float):
    """Columns along [001] of the fcc lattice points inside a sphere centred on a lattice point.

    Returns (k, 2) column (x, y) offsets from the centre, (k,) atoms per column, (k,) z of each
    column's first atom relative to the centre (Å). Exact lattice-point counting.
    """
    half = a / 2
    reach = int(np.floor(radius / half))
    i = np.arange(-reach, reach + 1)
    gi, gj, gk = np.meshgrid(i, i, i, indexing="ij")
    inside = ((gi + gj + gk) % 2 == 0) & (
        (gi**2 + gj**2 + gk**2) * half**2 <= radius**2 * (1 + 1e-12)
    )
    counts = inside.sum(axis=2)
    z_first = np.where(inside, gk, reach + 1).min(axis=2) * half
    keep = counts > 0
    xy = np.stack([gi[:, :, 0][keep], gj[:, :, 0][keep]], axis=1) * half
    return xy, counts[keep], z_first[keep]


def nanoparticle_on_support(
    key: PRNGKeyArray,
    element: str = "Au",
    radius: float = 15.0,
    cell=(64.0, 64.0),
    support_thickness=30.0,
    support_element: str | int = "C",
    support_density=2.0,
    support_column_area: float = 2.0,
) -> Specimen:
    """A spherical fcc nanoparticle along [001] on an amorphous support film.

    Particle: the fcc lattice points (one at the sphere centre) within ``radius`` of the centre,
    grouped into [001] columns on the a/2 square grid; each column's ``counts`` is its exact
    number of atoms inside the sphere. The particle is centred in the cell (x, y) with its top
    at z ≈ 0 (centre at z = radius) and its sites carry phase 1; ``domains`` holds its outline
    (cell_x/2, cell_y/2, radius), so ``phase_map`` marks the particle.

    Support: a film under the particle (z from 2·radius to 2·radius + support_thickness) modelled
    as round(cell area / support_column_area) "columns" at uniformly random (x, y) drawn from
    ``key``. Each holds the same fractional count n·t·A_col, with n = ρ·N_A / M the bulk atom
    density of ``support_element`` at ``support_density``, t the film thickness and A_col the
    cell area per column, so the areal atom density equals that of the bulk film exactly (about
    3.0 atoms/Å² for 30 Å of amorphous carbon at 2.0 g/cm³). Phase 0, z = 2·radius.

    Debye–Waller: generic 0.5 Å² for all sites; displacement thresholds: the 20 eV default.

    Args:
        key: PRNG key for the support positions.
        element: particle metal, one of :data:`FCC_LATTICE_PARAMETERS` (Au, Pt, Pd, Ag).
        radius: particle radius, Å (static, > 0, at most half the smaller cell side).
        cell: (2,) cell extent (x, y), Å (static, > 0).
        support_thickness: film thickness, Å (≥ 0; may be traced).
        support_element: element of the film (symbol or Z).
        support_density: mass density of the film, g/cm³ (> 0; may be traced; amorphous carbon
            ≈ 2.0).
        support_column_area: projected area per support column, Å² (static, > 0).

    Returns:
        Specimen: particle columns, then support columns; cell (cell_x, cell_y,
        2·radius + support_thickness) Å; one domain.
    """
    a = _choose("element", element, FCC_LATTICE_PARAMETERS)
    check_positive("radius", radius, "Å")
    radius = _static_float("radius", radius)
    cell_xy = np.asarray(cell, dtype=float) if is_concrete(cell) else None
    if cell_xy is None or cell_xy.shape != (2,):
        raise ValueError(f"cell must be a concrete pair (x, y) of lengths in Å; got {cell!r}")
    check_positive("cell", cell_xy, "Å")
    if 2 * radius > cell_xy.min():
        raise ValueError(f"radius must lie in (0, {cell_xy.min() / 2}] Å (half the smaller cell "
                         f"side, so the particle fits in cell={tuple(cell_xy)}); got {radius!r}")
    check_nonnegative("support_thickness", support_thickness, "Å")
    z_support = atomic_number(support_element, "support_element")
    check_positive("support_density", support_density, "g/cm³")
    check_positive("support_column_area", support_column_area, "Å²")
    column_area = _static_float("support_column_area", support_column_area)

    dtype = _float()
    return _nanoparticle(
        key, jnp.asarray(support_thickness, dtype), jnp.asarray(support_density, dtype),
        element, radius, tuple(float(v) for v in cell_xy), z_support, column_area,
    )


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _nanoparticle(key, thickness, density, element, radius, cell, z_support, column_area):
    a = FCC_LATTICE_PARAMETERS[element]
    cell_xy = np.asarray(cell)
    offsets, atoms, z_first = _fcc_sphere_columns(a, radius)
    centre = cell_xy / 2
    particle = _specimen(
        np.column_stack([centre + offsets, radius + z_first]),
        atomic_number(element),
        (cell_xy[0], cell_xy[1], 2 * radius),
        counts=atoms.astype(float),
        debye_waller=GENERIC_DEBYE_WALLER,
        phases=1,
        domains=[[centre[0], centre[1], radius]],
    )

    n_support = max(1, round(float(np.prod(cell_xy)) / column_area))
    area_per_column = float(np.prod(cell_xy)) / n_support
    number_density = density * _AVOGADRO / ATOMIC_MASSES_U[z_support] * _CM3_PER_A3  # 1/Å³
    count = number_density * thickness * area_per_column
    xy = jax.random.uniform(key, (2 * n_support,), thickness.dtype).reshape(-1, 2) * cell_xy
    support = _specimen(
        jnp.concatenate([xy, jnp.full((n_support, 1), 2 * radius, xy.dtype)], axis=1),
        z_support,
        jnp.concatenate([jnp.asarray(cell_xy, xy.dtype), (2 * radius + thickness)[None]]),
        counts=count,
        debye_waller=GENERIC_DEBYE_WALLER,
    )
    return concatenate(particle, _drop_empty(support))  # cell: the larger, the support's
