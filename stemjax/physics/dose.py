"""Electron dose: electrons per probe position, areal dose, and dose accumulated over scans.

Current in pA, dwell time in µs, lengths in Å, dose in e⁻/Å². A raster scan with step ``s``
spreads the electrons of each probe position over the ``s × s`` square centred on it, so a scan
of ``grid`` covers the rectangle ``[origin - s/2, origin + (shape - 1/2) s]`` with a uniform dose
of ``electrons_per_position / s²``. Probe tails (the part of the probe intensity that falls
outside that square) are neglected throughout.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from stemjax._validation import check_nonnegative, check_positive, is_concrete
from stemjax.physics.constants import ELEMENTARY_CHARGE_C
from stemjax.physics.scan import ScanGrid
from stemjax.physics.specimen import Specimen

_ELECTRONS_PER_PA_US = 1e-18 / ELEMENTARY_CHARGE_C
"""Electrons carried by 1 pA during 1 µs (1e-12 A × 1e-6 s / e)."""


def _float(*values) -> jnp.dtype:
    return jnp.result_type(*values, float)


def electrons_per_position(
    current_pA: Float[ArrayLike, "..."], dwell_us: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Electrons delivered at one probe position, I·τ/e (100 pA for 1 µs gives 624.15 e⁻).

    Args:
        current_pA: beam current, pA (≥ 0), any shape.
        dwell_us: dwell time per probe position, µs (≥ 0), broadcast against ``current_pA``.

    Returns:
        Electrons per position (float), broadcast shape.
    """
    check_nonnegative("current_pA", current_pA, "pA")
    check_nonnegative("dwell_us", dwell_us, "µs")
    dtype = _float(current_pA, dwell_us)
    current = jnp.asarray(current_pA, dtype)
    dwell = jnp.asarray(dwell_us, dtype)
    return current * dwell * _ELECTRONS_PER_PA_US


def dose_per_area(
    current_pA: Float[ArrayLike, "..."],
    dwell_us: Float[ArrayLike, "..."],
    step_A: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """Areal dose of a raster scan, e⁻/Å²: electrons per position / step².

    Args:
        current_pA: beam current, pA (≥ 0).
        dwell_us: dwell time per probe position, µs (≥ 0).
        step_A: distance between neighbouring probe positions, Å (> 0).
    """
    check_positive("step_A", step_A, "Å")
    electrons = electrons_per_position(current_pA, dwell_us)
    step = jnp.asarray(step_A, _float(electrons, step_A))
    return electrons / step**2


def _scanned_bounds(grid: ScanGrid) -> tuple[Array, Array]:
    """(2,) lower and upper (x, y) corners of the rectangle a raster of ``grid`` covers, Å."""
    step = jnp.asarray(grid.step, grid.origin.dtype)
    counts = jnp.array([grid.shape[1], grid.shape[0]], grid.origin.dtype)
    low = grid.origin - 0.5 * step
    return low, low + counts * step


class DoseMap(eqx.Module):
    """Dose accumulated over the specimen, on a raster of square pixels.

    Pixel ``[i, j]`` is the square of side ``grid.step`` centred on ``grid.positions()[i, j]``
    (row i along y, column j along x, as for images).

    Attributes:
        grid: the raster of pixel centres (origin Å, pixel size ``grid.step`` Å, static shape).
        dose: (h, w) dose received by each pixel, e⁻/Å² (area-averaged over the pixel).
    """

    grid: ScanGrid
    dose: Float[Array, "h w"]

    def __init__(self, grid: ScanGrid, dose: Float[ArrayLike, "h w"] | None = None):
        self.grid = grid
        if dose is None:
            self.dose = jnp.zeros(grid.shape, grid.origin.dtype)
        else:
            dose = jnp.asarray(dose, _float(dose))
            if dose.shape[-2:] != grid.shape:
                raise ValueError(
                    f"dose must have shape {grid.shape} (the grid's shape); got {dose.shape}"
                )
            check_nonnegative("dose", dose, "e⁻/Å²")
            self.dose = dose

    @classmethod
    def covering(cls, specimen: Specimen, pixel_size_A: float) -> DoseMap:
        """An empty map whose pixels tile the specimen's cell from (0, 0).

        The map has ``ceil(cell / pixel_size_A)`` pixels along x and y, so its last row and
        column may reach past the cell. ``specimen.cell`` must be concrete (the shape is static).

        Args:
            specimen: the specimen to cover.
            pixel_size_A: side of a square pixel, Å (> 0).
        """
        check_positive("pixel_size_A", pixel_size_A, "Å")
        if not is_concrete(specimen.cell) or not is_concrete(pixel_size_A):
            raise ValueError(
                "DoseMap.covering needs a concrete specimen.cell and pixel_size_A (the map's "
                "shape is static); build the map outside jit/vmap"
            )
        cell = np.asarray(specimen.cell, dtype=float)
        pixel = float(pixel_size_A)
        # Tolerate rounding (e.g. 10 Å / 0.1 Å) before taking the ceiling.
        cols = max(1, math.ceil(cell[0] / pixel - 1e-6))
        rows = max(1, math.ceil(cell[1] / pixel - 1e-6))
        return cls(ScanGrid((rows, cols), pixel, (0.5 * pixel, 0.5 * pixel)))

    @property
    def pixel_area(self) -> Float[Array, ""]:
        """Area of one pixel, Å²."""
        return jnp.asarray(self.grid.step, self.dose.dtype) ** 2

    def total_electrons(self) -> Float[Array, ""]:
        """Electrons deposited over the whole map (Σ dose × pixel area)."""
        return jnp.sum(self.dose, axis=(-2, -1)) * self.pixel_area

    def dose_at(self, xy: Float[ArrayLike, "... 2"]) -> Float[Array, "..."]:
        """Dose of the pixel holding each point (x, y) in Å, e⁻/Å²; 0 outside the map.

        ``dose_map.dose_at(specimen.atom_xy)`` is the (n,) cumulative dose of each site.
        """
        xy = jnp.asarray(xy, self.dose.dtype)
        step = jnp.asarray(self.grid.step, self.dose.dtype)
        index = jnp.floor((xy - self.grid.origin) / step + 0.5).astype(jnp.int32)
        col, row = index[..., 0], index[..., 1]
        rows, cols = self.grid.shape
        inside = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
        value = self.dose[jnp.clip(row, 0, rows - 1), jnp.clip(col, 0, cols - 1)]
        return jnp.where(inside, value, 0.0)


def _overlap(edges: Array, low: Array, high: Array) -> Array:
    """Length of each interval [edges[k], edges[k+1]] inside [low, high]."""
    clipped = jnp.clip(edges, low, high)
    return clipped[1:] - clipped[:-1]


def deposit(
    dose_map: DoseMap, grid: ScanGrid, electrons_per_position: Float[ArrayLike, ""]
) -> DoseMap:
    """Add the dose of one raster scan of ``grid`` to ``dose_map``; returns the new map.

    The scan leaves ``electrons_per_position / grid.step²`` e⁻/Å² uniformly over the rectangle
    it covers (each probe position's ``step × step`` square); a map pixel gains that dose times
    the fraction of its area inside the rectangle. When the rectangle lies inside the map, the
    electrons added equal ``electrons_per_position × rows × columns``. Probe tails are
    neglected.

    Args:
        dose_map: the map to add to.
        grid: the raster scanned (origin and step in Å).
        electrons_per_position: electrons per probe position (≥ 0), scalar.
    """
    check_nonnegative("electrons_per_position", electrons_per_position)
    electrons = jnp.asarray(electrons_per_position, dose_map.dose.dtype)
    return _deposit(dose_map, grid, electrons)


@jax.jit
def _deposit(dose_map: DoseMap, grid: ScanGrid, electrons_per_position) -> DoseMap:
    dtype = dose_map.dose.dtype
    electrons = jnp.asarray(electrons_per_position, dtype)
    low, high = _scanned_bounds(grid)
    low, high = low.astype(dtype), high.astype(dtype)
    pixel = jnp.asarray(dose_map.grid.step, dtype)
    rows, cols = dose_map.grid.shape
    start = dose_map.grid.origin.astype(dtype) - 0.5 * pixel
    x_edges = start[0] + jnp.arange(cols + 1, dtype=dtype) * pixel
    y_edges = start[1] + jnp.arange(rows + 1, dtype=dtype) * pixel
    fraction_x = _overlap(x_edges, low[0], high[0]) / pixel
    fraction_y = _overlap(y_edges, low[1], high[1]) / pixel
    areal = electrons / jnp.asarray(grid.step, dtype) ** 2
    added = areal * fraction_y[:, None] * fraction_x[None, :]
    return eqx.tree_at(lambda m: m.dose, dose_map, dose_map.dose + added)


def site_dose(
    specimen: Specimen, grid: ScanGrid, electrons_per_position: Float[ArrayLike, ""]
) -> Float[Array, " n"]:
    """(n,) dose each site receives from one raster scan of ``grid``, e⁻/Å².

    A site gets ``electrons_per_position / grid.step²`` when its (x, y) lies in the scanned
    rectangle (the probe positions extended by half a step on each side, lower edges included,
    upper edges excluded, so abutting scans do not count a site twice) and 0 otherwise; padding
    slots (``present`` False) get 0. Probe tails are neglected.

    Args:
        specimen: sites with (n, 3) positions in Å.
        grid: the raster scanned.
        electrons_per_position: electrons per probe position (≥ 0), scalar.
    """
    check_nonnegative("electrons_per_position", electrons_per_position)
    electrons = jnp.asarray(electrons_per_position, specimen.positions.dtype)
    return _site_dose(specimen, grid, electrons)


@jax.jit
def _site_dose(specimen: Specimen, grid: ScanGrid, electrons_per_position) -> Array:
    dtype = specimen.positions.dtype
    low, high = _scanned_bounds(grid)
    xy = specimen.atom_xy
    inside = jnp.all((xy >= low.astype(dtype)) & (xy < high.astype(dtype)), axis=-1)
    areal = jnp.asarray(electrons_per_position, dtype) / jnp.asarray(grid.step, dtype) ** 2
    return jnp.where(inside & specimen.present, areal, jnp.zeros((), dtype))


__all__ = [
    "DoseMap",
    "deposit",
    "dose_per_area",
    "electrons_per_position",
    "site_dose",
]
