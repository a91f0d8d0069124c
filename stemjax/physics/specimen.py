"""The specimen: a fixed-capacity set of atomic columns with its ground truth.

A *site* is one atomic column seen along the beam: an (x, y) position, an element, and
``counts`` atoms stacked along the beam (1 for a monolayer atom, the number of unit cells for a
crystal column). Sites of different elements at the same (x, y) describe a mixed column.
Capacity is fixed when the specimen is built; unused slots have ``present = False``, so
specimens built by the same builder stack under ``jax.vmap`` whatever their defects.

Ground truth follows STEMGym (shared/papers/000, appendix B): per-site ``atom_types``
(0 pristine, 1 vacancy, 2 substitution), a ``defect_mask``, and a ``phase_map`` and
``valid_region`` rasterised on a scan grid. Lengths are in Å (STEMGym stores nm).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from stemjax._validation import (
    check_finite,
    check_in_range,
    check_nonnegative,
    check_positive,
    is_concrete,
)
from stemjax.physics.elements import MAX_ATOMIC_NUMBER
from stemjax.physics.scan import ScanGrid

PRISTINE, VACANCY, SUBSTITUTION = 0, 1, 2
"""Values of ``Specimen.atom_types`` (STEMGym convention)."""

DEFAULT_DISPLACEMENT_THRESHOLD_EV = 20.0
"""Knock-on threshold used where no measured value is known, eV (typical of covalent and
metallic solids, Banhart, Rep. Prog. Phys. 62, 1181 (1999))."""


class Specimen(eqx.Module):
    """Atomic columns of a specimen, with ground truth. ``n`` is the fixed capacity.

    Attributes:
        positions: (n, 3) site positions, Å: x, y in the image plane and z the depth of the
            column's first atom below the entrance surface.
        atomic_numbers: (n,) int, Z of the element on the site.
        counts: (n,) atoms in the column along the beam (≥ 0; may be fractional for an
            averaged amorphous column).
        occupancies: (n,) probability in [0, 1] that the site is occupied; 0 for a vacancy.
        debye_waller: (n,) Debye–Waller factor B = 8π²⟨u²⟩, Å².
        displacement_threshold_ev: (n,) knock-on displacement threshold energy, eV.
        atom_types: (n,) int, 0 pristine, 1 vacancy, 2 substitution.
        phases: (n,) int, label of the phase the site belongs to (0 matrix, 1 second phase).
        present: (n,) bool, whether the slot holds a site of this specimen.
        cell: (3,) extent of the specimen along x, y and the beam, Å.
        domains: (d, 3) phase domains as discs (x, y, radius), Å; radius 0 marks an unused slot.
    """

    positions: Float[Array, "n 3"]
    atomic_numbers: Int[Array, " n"]
    counts: Float[Array, " n"]
    occupancies: Float[Array, " n"]
    debye_waller: Float[Array, " n"]
    displacement_threshold_ev: Float[Array, " n"]
    atom_types: Int[Array, " n"]
    phases: Int[Array, " n"]
    present: Bool[Array, " n"]
    cell: Float[Array, "3"]
    domains: Float[Array, "d 3"]

    def __check_init__(self):
        check_finite("positions", self.positions)
        check_nonnegative("counts", self.counts)
        check_in_range("occupancies", self.occupancies, 0.0, 1.0)
        check_nonnegative("debye_waller", self.debye_waller, "Å²")
        check_positive("displacement_threshold_ev", self.displacement_threshold_ev, "eV")
        check_positive("cell", self.cell, "Å")
        if is_concrete((self.atomic_numbers, self.present)):
            z = np.asarray(self.atomic_numbers)[np.asarray(self.present, dtype=bool)]
            check_in_range("atomic_numbers", z, 1, MAX_ATOMIC_NUMBER)

    @property
    def capacity(self) -> int:
        """Number of slots n (static)."""
        return self.positions.shape[-2]

    @property
    def defect_mask(self) -> Bool[Array, " n"]:
        """(n,) True on present sites that are vacancies or substitutions."""
        return self.present & (self.atom_types != PRISTINE)

    @property
    def atom_xy(self) -> Float[Array, "n 2"]:
        """(n, 2) in-plane site positions, Å."""
        return self.positions[..., :2]

    def phase_map(self, grid: ScanGrid) -> Int[Array, "h w"]:
        """(h, w) int phase label at each scan position: 1 inside a domain, else 0."""
        xy = grid.positions()
        centres, radii = self.domains[:, None, None, :2], self.domains[:, 2, None, None]
        inside = jnp.sum((xy[None] - centres) ** 2, axis=-1) < radii**2
        return jnp.any(inside, axis=0).astype(jnp.int32)

    def valid_region(self, grid: ScanGrid) -> Bool[Array, "h w"]:
        """(h, w) True where the scan position lies over the specimen's cell."""
        xy = grid.positions()
        return jnp.all((xy >= 0.0) & (xy <= self.cell[:2]), axis=-1)


def make_specimen(
    positions,
    atomic_numbers,
    cell,
    *,
    counts=1.0,
    occupancies=1.0,
    debye_waller=0.0,
    displacement_threshold_ev=DEFAULT_DISPLACEMENT_THRESHOLD_EV,
    atom_types=PRISTINE,
    phases=0,
    present=True,
    domains=None,
) -> Specimen:
    """Build a :class:`Specimen` from per-site arrays, broadcasting scalars to (n,).

    Args:
        positions: (n, 3) or (n, 2) site positions, Å (z = 0 when (n, 2)).
        atomic_numbers: (n,) Z per site.
        cell: (3,) extent along x, y and the beam, Å.
        domains: (d, 3) discs (x, y, radius) in Å, or None for no domain slot.
        Other keywords: per-site values or scalars, as in :class:`Specimen`.
    """
    dtype = jnp.result_type(float)
    pos = jnp.asarray(positions, dtype=dtype)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3):
        raise ValueError(f"positions must have shape (n, 2) or (n, 3); got {pos.shape}")
    if pos.shape[1] == 2:
        pos = jnp.concatenate([pos, jnp.zeros_like(pos[:, :1])], axis=1)
    n = pos.shape[0]

    def per_site(value, kind):
        if is_concrete(value):  # broadcast on the host: no compilation per size
            return jnp.asarray(np.broadcast_to(np.asarray(value, dtype=kind), (n,)))
        return jnp.broadcast_to(jnp.asarray(value, dtype=kind), (n,))

    return Specimen(
        positions=pos,
        atomic_numbers=per_site(atomic_numbers, jnp.int32),
        counts=per_site(counts, dtype),
        occupancies=per_site(occupancies, dtype),
        debye_waller=per_site(debye_waller, dtype),
        displacement_threshold_ev=per_site(displacement_threshold_ev, dtype),
        atom_types=per_site(atom_types, jnp.int32),
        phases=per_site(phases, jnp.int32),
        present=per_site(present, bool),
        cell=jnp.asarray(cell, dtype=dtype),
        domains=jnp.zeros((0, 3), dtype) if domains is None else jnp.asarray(domains, dtype),
    )


def concatenate(first: Specimen, second: Specimen) -> Specimen:
    """Sites and domains of ``first`` then ``second`` in one specimen; the cell is the larger."""
    joined = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, second)
    return eqx.tree_at(lambda s: s.cell, joined, jnp.maximum(first.cell, second.cell))
