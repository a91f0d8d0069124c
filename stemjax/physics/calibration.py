"""Multislice calibration of the fast incoherent ADF model (opt-in).

The uncalibrated :class:`~stemjax.physics.IncoherentImaging` uses unscreened Rutherford
scattering with a Z^1.7 law and a Beer–Lambert closure. Against frozen-phonon multislice it is
off by a factor of a few (screening and thermal diffuse scattering change the angular
distribution, channelling changes the thickness dependence), and its closure saturates below
what thick heavy columns really send to a high-angle detector. The calibrated model replaces
the closure by a sum of per-column detector cross-sections fitted to multislice:

    s(p) = Σ_i c_i · occ_i · f(Z_i; c_i) · σ(Z_i; inner, outer) · ρ_B(r_i − p),

with σ the Z^1.7 Rutherford cross-section into the detector annulus
(:func:`~stemjax.physics.annular_cross_section`, Å²), ρ_B the probe intensity per Å² smeared by
the site's Debye–Waller factor, c_i the atoms in the column and f a dimensionless factor. f is
tabulated per element, beam energy, probe semi-angle and detector for columns of 1…32 atoms,
interpolated linearly in c and held at its end values outside the table (a column of more
than 32 atoms gets the 32-atom factor). The table was fitted so that s equals the multislice
signal with the probe on an isolated column; ``benchmarks/calibrate_haadf.py`` makes it and
``benchmarks/results/haadf_calibration.md`` reports its errors.

Each site is looked up with its own ``counts``: sites of different elements that share an
(x, y) (a mixed column) are treated as separate columns.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from stemjax._validation import is_concrete
from stemjax.physics.detector import AnnularDetector
from stemjax.physics.elements import MAX_ATOMIC_NUMBER, SYMBOLS, atomic_number

CALIBRATION_EXPONENT = 1.7
"""Z exponent of the Rutherford cross-section the factors multiply."""

_TABLES = {"multislice": Path(__file__).parent / "data" / "haadf_calibration.json"}


class ColumnCalibration(eqx.Module):
    """Correction factors f(Z; c) of the fast model for one beam energy, probe and detector.

    Attributes:
        counts: (m,) column lengths at which f is tabulated, atoms (increasing).
        factors: (MAX_ATOMIC_NUMBER + 1, m) f by atomic number; NaN rows for elements
            the table does not cover.
        energy_kev: beam energy, keV (static).
        semiangle_mrad: probe convergence semi-angle, mrad (static).
        inner_mrad, outer_mrad: detector annulus, mrad (static).
        elements: atomic numbers covered (static).
    """

    counts: Float[Array, " m"]
    factors: Float[Array, "z m"]
    energy_kev: float = eqx.field(static=True)
    semiangle_mrad: float = eqx.field(static=True)
    inner_mrad: float = eqx.field(static=True)
    outer_mrad: float = eqx.field(static=True)
    elements: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, counts, factors: dict, energy_kev, semiangle_mrad, inner_mrad,
                 outer_mrad):  # fmt: skip
        """Args: ``counts`` (m,) atoms; ``factors`` maps an element (symbol or Z) to its (m,)
        factors; the rest as in the attributes."""
        counts = np.asarray(counts, float)
        if counts.ndim != 1 or counts.size < 2 or np.any(np.diff(counts) <= 0):
            raise ValueError(f"counts must be increasing, with at least 2 entries; got {counts}")
        table = np.full((MAX_ATOMIC_NUMBER + 1, counts.size), np.nan)
        for element, row in factors.items():
            row = np.asarray(row, float)
            if row.shape != counts.shape or not np.all(np.isfinite(row) & (row > 0)):
                raise ValueError(f"factors[{element!r}] must hold {counts.size} finite values "
                                 f"> 0; got {row}")  # fmt: skip
            table[atomic_number(element)] = row
        dtype = jnp.result_type(float)
        self.counts = jnp.asarray(counts, dtype)
        self.factors = jnp.asarray(table, dtype)
        self.energy_kev = float(energy_kev)
        self.semiangle_mrad = float(semiangle_mrad)
        self.inner_mrad = float(inner_mrad)
        self.outer_mrad = float(outer_mrad)
        self.elements = tuple(sorted(atomic_number(e) for e in factors))

    def factor(self, z: ArrayLike, counts: ArrayLike) -> Float[Array, " n"]:
        """(n,) f for sites of atomic numbers ``z`` (n,) and columns of ``counts`` (n,) atoms;
        NaN for elements the table does not cover."""
        z = jnp.clip(jnp.asarray(z), 0, MAX_ATOMIC_NUMBER)
        rows = self.factors[z]
        counts = jnp.broadcast_to(jnp.asarray(counts, rows.dtype), z.shape)
        # linear interpolation between the nodes, constant beyond the ends
        return jax.vmap(lambda c, row: jnp.interp(c, self.counts, row))(counts, rows)

    def check_elements(self, z, present) -> None:
        """Raise ValueError if a present site's element is not covered (concrete inputs only)."""
        if not is_concrete((z, present)):
            return
        found = set(np.unique(np.asarray(z)[np.asarray(present, bool)]).tolist())
        missing = sorted(found - set(self.elements))
        if missing:
            raise ValueError(
                f"the calibration for {self.describe()} does not cover "
                f"{', '.join(_symbol(m) for m in missing)}; covered elements: "
                f"{', '.join(_symbol(e) for e in self.elements)}"
            )

    def describe(self) -> str:
        """'E keV, α mrad probe, inner–outer mrad detector'."""
        return (f"{self.energy_kev:g} keV, {self.semiangle_mrad:g} mrad probe, "
                f"{self.inner_mrad:g}-{self.outer_mrad:g} mrad detector")  # fmt: skip

    def matches(self, energy_kev: float, semiangle_mrad: float, detector: AnnularDetector) -> bool:
        """Whether this table is for that energy, probe semi-angle and detector."""
        ours = (self.energy_kev, self.semiangle_mrad, self.inner_mrad, self.outer_mrad)
        theirs = (energy_kev, semiangle_mrad, float(detector.inner_mrad),
                  float(detector.outer_mrad))  # fmt: skip
        return bool(np.allclose(ours, theirs, rtol=1e-4, atol=1e-6))


def _symbol(z: int) -> str:
    return SYMBOLS[z - 1] if 1 <= z <= MAX_ATOMIC_NUMBER else str(z)


@functools.cache
def _read(name: str) -> dict:
    if name not in _TABLES:
        raise ValueError(f"calibration must be one of {sorted(_TABLES)} or a ColumnCalibration; "
                         f"got {name!r}")  # fmt: skip
    return json.loads(_TABLES[name].read_text())


def calibration_table(name: str = "multislice") -> dict:
    """The shipped table as a dict: ``counts``, ``geometries`` (each with ``energy_kev``,
    ``semiangle_mrad``, ``detector``, ``inner_mrad``, ``outer_mrad``, ``factors`` by element
    symbol) and ``metadata``. A copy: changing it does not change the table."""
    return copy.deepcopy(_read(name))


def load_calibration(
    energy_kev: float,
    semiangle_mrad: float,
    detector: AnnularDetector,
    name: str = "multislice",
) -> ColumnCalibration:
    """The shipped calibration for a beam energy (keV), probe semi-angle (mrad) and detector.

    Raises:
        ValueError: when the table has no entry for that combination; the message lists the
            combinations it has.
    """
    if not is_concrete((detector.inner_mrad, detector.outer_mrad)):
        raise ValueError("detector angles must be concrete (not traced) to look up a calibration")
    wanted = (float(energy_kev), float(semiangle_mrad), float(detector.inner_mrad),
              float(detector.outer_mrad))  # fmt: skip
    table = _read(name)
    for index, entry in enumerate(table["geometries"]):
        if np.allclose(_geometry(entry), wanted, rtol=1e-4, atol=1e-6):
            return _entry(name, index)
    available = "; ".join(
        "{:g} keV/{:g} mrad/{:g}-{:g} mrad".format(*_geometry(e)) for e in table["geometries"]
    )
    raise ValueError(
        f"no {name} calibration for energy_kev={wanted[0]:g}, semiangle_mrad={wanted[1]:g} "
        f"and a {wanted[2]:g}-{wanted[3]:g} mrad detector; available "
        f"(energy/probe/detector): {available}"
    )


def _geometry(entry: dict) -> tuple[float, float, float, float]:
    return (entry["energy_kev"], entry["semiangle_mrad"], entry["inner_mrad"],
            entry["outer_mrad"])  # fmt: skip


@functools.cache
def _entry(name: str, index: int) -> ColumnCalibration:
    table = _read(name)
    entry = table["geometries"][index]
    return ColumnCalibration(table["counts"], entry["factors"], *_geometry(entry))
