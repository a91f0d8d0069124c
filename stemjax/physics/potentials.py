"""Independent-atom electron scattering factors and projected potentials (Fourier space).

Scattering factors f_e(g) (Å, first Born approximation) at spatial frequency g (Å⁻¹):

- ``"lobato"`` (default): Lobato & Van Dyck, Acta Cryst. A 70, 636 (2014),
  f_e(g) = Σ₅ aᵢ (2 + bᵢg²) / (1 + bᵢg²)².
- ``"kirkland"``: Kirkland, *Advanced Computing in Electron Microscopy*, 2nd ed. (2010),
  Appendix C, f_e(g) = Σ₃ aᵢ / (g² + bᵢ) + Σ₃ cᵢ exp(−dᵢg²).

The tables (Z = 1…92) live in ``stemjax/physics/data/``, with their citation, the source they
were transcribed from and its licence.

The projected potential of a slice is built as a structure factor on the periodic FFT grid
that spans the cell,

    V(g) = (h²/2πm₀e) Σᵢ wᵢ f_e(Zᵢ; g) exp(−Bᵢg²/4) exp(−2πi g·rᵢ),   V(r) = FFT⁻¹[V](r),

with h²/2πm₀e = 2πa₀e = 47.88 V·Å², wᵢ the number of atoms of site i in the slice times its
occupancy, and Bᵢ its Debye–Waller factor (Å², ``Specimen.debye_waller``, B = 8π²⟨u²⟩).
The sum is exact (no splatting), periodic, free of aliasing and differentiable in the atom
positions. exp(−2πi g·r) factorises into x and y parts, so each species costs one matrix
product per slice. Potentials are in V·Å (projected along the beam).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from stemjax._validation import check_in_range, check_int_at_least, check_positive, is_concrete
from stemjax.physics.constants import BOHR_RADIUS_ANGSTROM, FINE_STRUCTURE_INVERSE, HC_EV_ANGSTROM
from stemjax.physics.elements import MAX_ATOMIC_NUMBER
from stemjax.physics.probe import _pair
from stemjax.physics.specimen import Specimen

PARAMETRISATIONS = ("lobato", "kirkland")
"""Names of the scattering-factor tables."""

POTENTIAL_PER_SCATTERING_FACTOR = (
    BOHR_RADIUS_ANGSTROM * HC_EV_ANGSTROM / FINE_STRUCTURE_INVERSE
)  # 2π a₀ e/(4πε₀), since e/(4πε₀) = ħc/α⁻¹ = hc/(2π α⁻¹)
"""h²/(2πm₀e) = 2πa₀e ≈ 47.878 V·Å²: turns f_e (Å) into the Fourier transform of the atomic
potential (V·Å³)."""

_DATA = Path(__file__).parent / "data"


@functools.cache
def _table(parametrisation: str) -> np.ndarray:
    """(93, k) float64 coefficients by atomic number (row 0 unused): Lobato a₁…₅ b₁…₅ or
    Kirkland a₁…₃ b₁…₃ c₁…₃ d₁…₃."""
    data = json.loads((_DATA / f"{parametrisation}.json").read_text())["elements"]
    keys = "ab" if parametrisation == "lobato" else "abcd"
    width = 10 if parametrisation == "lobato" else 12
    table = np.full((MAX_ATOMIC_NUMBER + 1, width), np.nan)
    for z in range(1, MAX_ATOMIC_NUMBER + 1):
        table[z] = np.concatenate([data[str(z)][k] for k in keys])
    return table


def _check_parametrisation(parametrisation: str) -> str:
    if parametrisation not in PARAMETRISATIONS:
        raise ValueError(
            f"parametrisation must be one of {PARAMETRISATIONS}; got {parametrisation!r}"
        )
    return parametrisation


def _evaluate(coefficients, g2, parametrisation: str, xp=jnp):
    """f_e (Å) from (..., k) coefficients and g² (Å⁻²) of shape (...); ``xp`` is jnp or np."""
    g2 = g2[..., None]
    if parametrisation == "lobato":
        a, b = coefficients[..., :5], coefficients[..., 5:]
        bg2 = b * g2
        return (a * (2.0 + bg2) / (1.0 + bg2) ** 2).sum(-1)
    a, b = coefficients[..., 0:3], coefficients[..., 3:6]
    c, d = coefficients[..., 6:9], coefficients[..., 9:12]
    return (a / (g2 + b)).sum(-1) + (c * xp.exp(-d * g2)).sum(-1)


def scattering_factor(
    z: ArrayLike, g_inv_angstrom: ArrayLike, parametrisation: str = "lobato"
) -> Array:
    """Electron scattering factor f_e of a neutral atom, Å.

    Args:
        z: atomic number(s), ints in [1, 92], any shape broadcastable with ``g_inv_angstrom``.
        g_inv_angstrom: spatial frequency g = 2 sin(θ)/λ, Å⁻¹ (≥ 0).
        parametrisation: ``"lobato"`` (default) or ``"kirkland"``.

    Returns:
        f_e(g), Å, of the broadcast shape. At g = 0 the Lobato factor of H is a₀ (P9).
    """
    _check_parametrisation(parametrisation)
    check_in_range("z", z, 1, MAX_ATOMIC_NUMBER)
    if is_concrete(z) and not np.all(np.mod(np.asarray(z, float), 1.0) == 0):
        raise ValueError(f"z must hold integer atomic numbers in [1, 92]; got {z!r}")
    check_in_range("g_inv_angstrom", g_inv_angstrom, 0.0, np.inf, "Å⁻¹")
    dtype = jnp.result_type(float)
    g = jnp.asarray(g_inv_angstrom, dtype)
    z = jnp.asarray(z, jnp.int32)
    z, g = jnp.broadcast_arrays(z, g)
    coefficients = jnp.asarray(_table(parametrisation), dtype)[z]
    return _evaluate(coefficients, g**2, parametrisation)


def specimen_grid(
    specimen: Specimen, sampling: float
) -> tuple[tuple[int, int], tuple[float, float]]:
    """The periodic grid that spans the specimen's cell with pixels no larger than ``sampling``.

    Args:
        specimen: a specimen with a concrete cell.
        sampling: largest pixel size, Å.

    Returns:
        ((rows, columns), (row, column) pixel size in Å): rows along y, columns along x.
    """
    check_positive("sampling", sampling, "Å")
    if not is_concrete(specimen.cell):
        raise ValueError("specimen.cell must be concrete to choose a grid; pass shape explicitly")
    width, height = (float(v) for v in np.asarray(specimen.cell)[:2])
    shape = (math.ceil(height / sampling - 1e-9), math.ceil(width / sampling - 1e-9))
    return shape, (height / shape[0], width / shape[1])


def species_of(specimen: Specimen) -> tuple[int, ...]:
    """Sorted atomic numbers of the present sites (needs concrete ``atomic_numbers``)."""
    if not is_concrete((specimen.atomic_numbers, specimen.present)):
        raise ValueError(
            "species must be given (a tuple of atomic numbers) when the specimen's "
            "atomic_numbers are traced"
        )
    present = np.asarray(specimen.present, dtype=bool)
    return tuple(int(z) for z in np.unique(np.asarray(specimen.atomic_numbers)[present]))


def _check_species(species) -> tuple[int, ...]:
    species = tuple(int(z) for z in species)
    if not species:
        raise ValueError("species must name at least one atomic number; got ()")
    check_in_range("species", species, 1, MAX_ATOMIC_NUMBER)
    return species


@functools.lru_cache(maxsize=32)
def _form_factors(species, shape, sampling, parametrisation) -> np.ndarray:
    """(s, h, w) 47.88·f_e(|g|)/(Δy Δx) on the FFT grid, float64, V·Å (per unit weight)."""
    gy = np.fft.fftfreq(shape[0], sampling[0])
    gx = np.fft.fftfreq(shape[1], sampling[1])
    g2 = gy[:, None] ** 2 + gx[None, :] ** 2
    table = _table(parametrisation)
    scale = POTENTIAL_PER_SCATTERING_FACTOR / (sampling[0] * sampling[1])
    return np.stack([scale * _evaluate(table[z], g2, parametrisation, np) for z in species])


def slice_weights(
    specimen: Specimen, slice_thickness: float, n_slices: int
) -> Float[Array, "n_slices n"]:
    """Atoms of each site in each slice, times occupancy; 0 on padding slots.

    A site's ``counts`` atoms are spread evenly through the cell: atom k sits at depth
    z + k·t/c (t the cell thickness, c the counts; a fractional last atom counts as that
    fraction). Slice s holds depths [s·Δz, (s + 1)·Δz); atoms outside [0, n_slices·Δz) are
    left out. Depth is not differentiated.
    """
    z0 = specimen.positions[:, 2]
    counts = specimen.counts
    period = specimen.cell[2] / jnp.maximum(counts, 1.0)
    edges = jnp.arange(n_slices + 1, dtype=z0.dtype) * slice_thickness
    below = jnp.clip(jnp.ceil((edges[:, None] - z0[None, :]) / period[None, :]), 0.0, counts)
    atoms = jax.lax.stop_gradient(below[1:] - below[:-1])
    return atoms * jnp.where(specimen.present, specimen.occupancies, 0.0)


def _slice_potential(xy, weights, b_factor, one_hot, form_factors, gy, gx) -> Array:
    """(h, w) projected potential (V·Å) of sites at (n, 2) ``xy`` with (n,) ``weights``."""
    ey = jnp.exp(-0.25 * b_factor[:, None] * gy**2 - 2j * jnp.pi * xy[:, 1:2] * gy)  # (n, h)
    ex = jnp.exp(-0.25 * b_factor[:, None] * gx**2 - 2j * jnp.pi * xy[:, 0:1] * gx)  # (n, w)
    per_species = one_hot * weights  # (s, n)
    structure = jnp.einsum("sn,ny,nx->syx", per_species.astype(ey.dtype), ey, ex)
    return jnp.fft.ifft2(jnp.sum(form_factors * structure, axis=0)).real


def _one_hot(specimen: Specimen, species: tuple[int, ...]) -> Array:
    z = specimen.atomic_numbers
    one_hot = z[None, :] == jnp.asarray(species, z.dtype)[:, None]
    missing = specimen.present & ~jnp.any(one_hot, axis=0)
    one_hot = eqx.error_if(
        one_hot, jnp.any(missing), f"a present site's atomic number is not in species {species}"
    )
    return one_hot.astype(specimen.positions.dtype)


def slice_potentials(
    specimen: Specimen,
    shape: tuple[int, int],
    sampling,
    slice_thickness: float,
    n_slices: int | None = None,
    *,
    parametrisation: str = "lobato",
    species: tuple[int, ...] | None = None,
    displacements: Float[ArrayLike, "n_slices n 2"] | None = None,
) -> Float[Array, "n_slices h w"]:
    """Projected potential of each slice of the specimen, V·Å.

    Args:
        specimen: the sites; padding slots (``present`` False) contribute nothing.
        shape: (rows, columns) of the periodic grid spanning the cell (see
            :func:`specimen_grid`).
        sampling: pixel size, Å (scalar or (row, column) pair).
        slice_thickness: Δz, Å.
        n_slices: number of slices (static); default ⌈cell thickness / Δz⌉.
        parametrisation: ``"lobato"`` or ``"kirkland"``.
        species: atomic numbers on the grid (static); default those of the present sites.
        displacements: optional (n_slices, n, 2) in-plane (x, y) offsets of every site in every
            slice, Å (a frozen-phonon configuration). With displacements the Debye–Waller
            damping is left out, since the displacements carry the thermal motion.

    Returns:
        (n_slices, h, w) projected potential of each slice, V·Å.
    """
    shape, sampling, species, n_slices = _static_arguments(
        specimen, shape, sampling, species, parametrisation, slice_thickness, n_slices
    )
    return _slice_potentials(
        specimen, shape, sampling, float(slice_thickness), n_slices, parametrisation, species,
        None if displacements is None else jnp.asarray(displacements),
    )  # fmt: skip


def projected_potential(
    specimen: Specimen,
    shape: tuple[int, int],
    sampling,
    *,
    parametrisation: str = "lobato",
    species: tuple[int, ...] | None = None,
) -> Float[Array, "h w"]:
    """Potential of the whole specimen projected along the beam (infinite projection), V·Å.

    Each site counts ``counts × occupancy`` atoms, damped by its Debye–Waller factor. Args as
    in :func:`slice_potentials`. Returns the (h, w) projected potential, V·Å.
    """
    shape, sampling, species, _ = _static_arguments(
        specimen, shape, sampling, species, parametrisation, 1.0, 1
    )
    return _projected_potential(specimen, shape, sampling, parametrisation, species)


def _static_arguments(specimen, shape, sampling, species, parametrisation, thickness, n_slices):
    _check_parametrisation(parametrisation)
    rows, cols = shape
    shape = (check_int_at_least("shape[0]", rows, 1), check_int_at_least("shape[1]", cols, 1))
    check_positive("sampling", sampling, "Å")
    check_positive("slice_thickness", thickness, "Å")
    species = _check_species(species_of(specimen) if species is None else species)
    if n_slices is None:
        if not is_concrete(specimen.cell):
            raise ValueError("n_slices must be given when the specimen's cell is traced")
        n_slices = max(1, math.ceil(float(specimen.cell[2]) / float(thickness) - 1e-9))
    n_slices = check_int_at_least("n_slices", n_slices, 1)
    return shape, _pair(sampling), species, n_slices


def _grid_frequencies(shape, sampling, dtype) -> tuple[Array, Array]:
    gy = jnp.asarray(np.fft.fftfreq(shape[0], sampling[0]), dtype)
    gx = jnp.asarray(np.fft.fftfreq(shape[1], sampling[1]), dtype)
    return gy, gx


@eqx.filter_jit
def _slice_potentials(specimen, shape, sampling, thickness, n_slices, parametrisation, species,
                      displacements):  # fmt: skip
    dtype = specimen.positions.dtype
    form_factors = jnp.asarray(_form_factors(species, shape, sampling, parametrisation), dtype)
    gy, gx = _grid_frequencies(shape, sampling, dtype)
    one_hot = _one_hot(specimen, species)
    weights = slice_weights(specimen, thickness, n_slices)
    xy = specimen.positions[:, :2]
    if displacements is None:
        b_factor = specimen.debye_waller

        def one(w):
            return _slice_potential(xy, w, b_factor, one_hot, form_factors, gy, gx)

        return jax.lax.map(one, weights)
    b_factor = jnp.zeros_like(specimen.debye_waller)

    def one_displaced(args):
        w, d = args
        return _slice_potential(xy + d, w, b_factor, one_hot, form_factors, gy, gx)

    return jax.lax.map(one_displaced, (weights, displacements.astype(dtype)))


@eqx.filter_jit
def _projected_potential(specimen, shape, sampling, parametrisation, species):
    dtype = specimen.positions.dtype
    form_factors = jnp.asarray(_form_factors(species, shape, sampling, parametrisation), dtype)
    gy, gx = _grid_frequencies(shape, sampling, dtype)
    weights = specimen.counts * jnp.where(specimen.present, specimen.occupancies, 0.0)
    return _slice_potential(
        specimen.positions[:, :2], weights, specimen.debye_waller, _one_hot(specimen, species),
        form_factors, gy, gx,
    )  # fmt: skip
