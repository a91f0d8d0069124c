"""STEMGym worlds: five materials × three difficulty levels, tiled fields and ground truth.

A :class:`World` is one specimen prepared for a dose-budget experiment (shared/papers/000):
a square field of ``tiles × tiles`` tiles of ``tile_px × tile_px`` probe positions, imaged
tile by tile with the stemjax forward model at the paper's settings (200 keV, 21 mrad
convergence semi-angle, HAADF 68–200 mrad, multislice-calibrated incoherent imaging, Poisson
shot noise), with the ground truth the paper stores (atom xy, atom_types 0 pristine /
1 vacancy / 2 substitution, defect_mask, phase_map, valid_region).

Every world has the same layout whatever its material and difficulty:

- a matrix (crystal along a zone axis, or an amorphous support film), with point defects
  (vacancies and substitutions) drawn per eligible site;
- ⌈P/3⌉ to P = ``disc_grid²`` disc-shaped objects of phase 1, one per cell of a jittered
  ``disc_grid × disc_grid`` grid over the field, with random radii: rotated grains of the
  same crystal for the four crystals, fcc Au particles on amorphous carbon for
  ``"Nanoparticles"``. ``phase_map`` marks them and the ``particles`` task characterises them.

Arrays of all worlds of one ``size`` have the same shapes (the specimen is padded to a
common capacity, the per-tile site tables to a common width) and the World has no
material-specific static field, so one compiled environment serves all 60 tasks of a size
and worlds of different materials stack under ``jax.vmap``.

Lengths in Å, current in pA, dwell in µs, dose in e⁻/Å², times in s.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from stemjax._validation import check_nonnegative, check_positive
from stemjax.physics.crystals import (
    FCC_LATTICE_PARAMETERS,
    GAN_A,
    GAN_C,
    GE_LATTICE_PARAMETER,
    PEROVSKITES,
    SI_LATTICE_PARAMETER,
    gan,
    nanoparticle_on_support,
    perovskite,
    sige,
)
from stemjax.physics.defects import add_point_defects, inside_domains, rotated
from stemjax.physics.detector import STEMGYM_HAADF, AnnularDetector
from stemjax.physics.dose import electrons_per_position
from stemjax.physics.elements import atomic_number
from stemjax.physics.haadf import IncoherentImaging
from stemjax.physics.probe import Probe
from stemjax.physics.scan import ScanGrid
from stemjax.physics.specimen import SUBSTITUTION, VACANCY, Specimen, make_specimen

__all__ = [
    "DIFFICULTIES",
    "ENERGY_KEV",
    "MATERIALS",
    "PIXEL_A",
    "SEARCH_TARGETS",
    "SEMIANGLE_MRAD",
    "SIZES",
    "GroundTruth",
    "World",
    "WorldSettings",
    "fcc_column_counts",
    "make_world",
    "world_settings",
]

ENERGY_KEV = 200.0
"""Beam energy of every STEMGym world, keV (paper, appendix C)."""

SEMIANGLE_MRAD = 21.0
"""Probe convergence semi-angle, mrad (paper, appendix C)."""

PIXEL_A = 0.28
"""Probe step, Å: below the Nyquist step λ/(4α) = 0.299 Å of a 200 keV, 21 mrad probe, so the
HAADF image is sampled without aliasing and every column (≥ 1.1 Å apart) is resolved."""

MARGIN_A = 4.0
"""Imaging margin: sites within this distance of a tile contribute to its image, Å."""

MAX_DRIFT_A = 2.0
"""Largest residual specimen drift (after the microscope's drift correction), Å."""

PAD_A = MARGIN_A + MAX_DRIFT_A
"""Specimen beyond the field on every side, Å, so edge tiles see their neighbours."""

CRYSTAL_THICKNESS_A = 40.0
"""Thickness of the crystal lamellae, Å (about 10 atoms per column)."""

SUPPORT_THICKNESS_A = 30.0
"""Amorphous carbon support under the nanoparticles, Å."""

SUPPORT_COLUMN_AREA_A2 = 4.0
"""Projected area per support "column" of the amorphous film, Å² (areal density exact)."""

GRAIN_ROTATION_DEG = 30.0
"""In-plane rotation of the phase-1 grains of the crystals, degrees."""

MATERIALS = ("SrTiO3", "BaTiO3", "SiGe", "GaN", "Nanoparticles")
"""The five STEMGym materials, in the order of ``World.material``."""

DIFFICULTIES = ("easy", "medium", "hard")
"""The three difficulty levels, in the order of ``World.difficulty``."""


@dataclasses.dataclass(frozen=True)
class _Size:
    tiles: int  # tiles along x and along y
    tile_px: int  # probe positions along each side of a tile
    disc_grid: int  # disc slots along each side of the field
    capacity: int  # specimen slots (all materials padded to this)
    sites_per_tile: int  # width of the per-tile site table


SIZES = {
    "tiny": _Size(tiles=2, tile_px=16, disc_grid=1, capacity=512, sites_per_tile=160),
    "small": _Size(tiles=4, tile_px=32, disc_grid=2, capacity=2048, sites_per_tile=256),
    "default": _Size(tiles=8, tile_px=32, disc_grid=3, capacity=6144, sites_per_tile=256),
}
"""Field sizes: ``tiles × tiles`` tiles of ``tile_px²`` positions at :data:`PIXEL_A`.
"default" is 8 × 8 tiles of 32 × 32 px (71.7 Å across); "small" 4 × 4 × 32 px; "tiny"
(2 × 2 × 16 px, 9 Å) is for tests only (its discs are a few Å across)."""


# material: (defects, target type of the search task)
#   defects: list of (eligible-site rule, vacancy?, substitute element or None)
_MATERIAL_DEFECTS = {
    "SrTiO3": ((("A", True, None), ("B", False, "Nb")), SUBSTITUTION),
    "BaTiO3": ((("A", True, "Sr"),), VACANCY),
    "SiGe": ((("Si", True, "Ga"),), SUBSTITUTION),
    "GaN": ((("Ga", True, "Fe"),), VACANCY),
    "Nanoparticles": ((("particle", True, "Pd"),), SUBSTITUTION),
}

SEARCH_TARGETS = {material: target for material, (_, target) in _MATERIAL_DEFECTS.items()}
"""material → defect type the search task asks for (1 vacancy, 2 substitution); public
knowledge of the task, like the material itself."""

_DIFFICULTY_PRESETS = {
    # defect_fraction, read_noise, drift_A_per_s, line_jitter_A, threshold_scale, resolve_dose
    "easy": (0.06, 0.5, 0.0, 0.0, 1.0, 1000.0),
    "medium": (0.04, 1.5, 0.1, 0.05, 0.6, 2000.0),
    "hard": (0.02, 3.0, 0.3, 0.1, 0.35, 4000.0),
}


@dataclasses.dataclass(frozen=True)
class WorldSettings:
    """Everything that defines a world besides its key (see :func:`world_settings`).

    Attributes:
        material: one of :data:`MATERIALS`.
        difficulty: one of :data:`DIFFICULTIES`.
        size: one of :data:`SIZES`.
        defect_fraction: probability that an eligible site is a vacancy, and (separately)
            that one is a substitution, in [0, 0.5].
        read_noise: detector read noise, detected-electron units (≥ 0).
        drift_A_per_s: specimen drift speed, Å/s (≥ 0; direction drawn per episode).
        line_jitter_A: rms x offset of each scan line, Å (≥ 0, ≤ 0.5).
        threshold_scale: factor on every site's knock-on displacement threshold, (0, 1].
        current_pA: beam current, pA (> 0).
        max_dwell_us: largest dwell per probe position an action may ask, µs (> 0).
        budget_e_per_A2: dose budget as a mean over the field, e⁻/Å² (> 0).
        resolve_dose_e_per_A2: tile dose from which the oracle analyst (the reward) reads a
            tile, e⁻/Å² (> 0).
        settle_s: time lost per step (beam shift and settling), s (≥ 0).
        flyback_us: time between scan lines, µs (≥ 0).
    """

    material: str
    difficulty: str
    size: str
    defect_fraction: float
    read_noise: float
    drift_A_per_s: float
    line_jitter_A: float
    threshold_scale: float
    current_pA: float = 20.0
    max_dwell_us: float = 10.0
    budget_e_per_A2: float = 6000.0
    resolve_dose_e_per_A2: float = 2000.0
    settle_s: float = 0.1
    flyback_us: float = 50.0


def _choose(name: str, value, allowed) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}; got {value!r}")
    return value


def check_world(world) -> None:
    """Raises ``ValueError`` unless ``world`` is a :class:`World`."""
    if not isinstance(world, World):
        raise ValueError(f"world must be a stemjax.worlds.stemgym.World (see make_world); got "
                         f"{type(world).__name__}")  # fmt: skip


def world_settings(
    material: str = "SrTiO3", difficulty: str = "medium", size: str = "default", **changes
) -> WorldSettings:
    """The preset settings of a material and difficulty, with ``changes`` applied.

    Difficulty presets (defect fraction per eligible site and kind; read noise, counts;
    drift, Å/s; line jitter, Å; displacement-threshold scale; resolve dose, e⁻/Å²):
    easy (0.06, 0.5, 0.0, 0.0, 1.0, 1000), medium (0.04, 1.5, 0.1, 0.05, 0.6, 2000),
    hard (0.02, 3.0, 0.3, 0.1, 0.35, 4000). All worlds: 20 pA, dwell ≤ 10 µs, budget
    6000 e⁻/Å² (field mean), 0.1 s settling per step, 50 µs flyback per line.

    Raises:
        ValueError: for an unknown material, difficulty, size or setting name, or a value out
            of its range (the message names it, the range and the value).
    """
    _choose("material", material, MATERIALS)
    _choose("difficulty", difficulty, DIFFICULTIES)
    _choose("size", size, SIZES)
    fraction, noise, drift, jitter, scale, resolve = _DIFFICULTY_PRESETS[difficulty]
    settings = WorldSettings(material, difficulty, size, fraction, noise, drift, jitter, scale,
                             resolve_dose_e_per_A2=resolve)  # fmt: skip
    names = {f.name for f in dataclasses.fields(WorldSettings)} - {"material", "difficulty", "size"}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(f"unknown world setting(s) {unknown}; allowed: {sorted(names)}")
    for name, value in changes.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a real number; got {value!r}")
    settings = dataclasses.replace(settings, **{k: float(v) for k, v in changes.items()})
    _check_settings(settings)
    return settings


def _check_settings(s: WorldSettings) -> None:
    def in_range(name, low, high, unit="", low_open=False):
        value = getattr(s, name)
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
        if not ok:
            bracket = "(" if low_open else "["
            raise ValueError(f"{name} must lie in {bracket}{low}, {high}]{unit}; got {value!r}")

    in_range("defect_fraction", 0.0, 0.5)
    in_range("line_jitter_A", 0.0, 0.5, " Å")
    in_range("threshold_scale", 0.0, 1.0, low_open=True)
    for name, unit in (("read_noise", ""), ("drift_A_per_s", " Å/s"), ("settle_s", " s"),
                       ("flyback_us", " µs")):  # fmt: skip
        check_nonnegative(name, getattr(s, name), unit.strip())
    for name, unit in (("current_pA", "pA"), ("max_dwell_us", "µs"),
                       ("budget_e_per_A2", "e⁻/Å²"), ("resolve_dose_e_per_A2", "e⁻/Å²")):  # fmt: skip
        check_positive(name, getattr(s, name), unit)


# --------------------------------------------------------------------------------------------
# the world pytree


class GroundTruth(eqx.Module):
    """What the specimen really is, as STEMGym stores it (lengths in Å, not nm).

    ``n`` is the specimen capacity, (H, W) the field's probe positions, P the disc slots.

    Attributes:
        atom_xy: (n, 2) site positions (x, y), Å.
        atom_types: (n,) int32, 0 pristine, 1 vacancy, 2 substitution.
        present: (n,) bool, slots that hold a site.
        defect_mask: (n,) bool, present sites that are vacancies or substitutions.
        site_tile: (n,) int32, the tile holding each present site in the field, −1 otherwise.
        phase_map: (H, W) int32, 1 inside a disc (grain or particle), else 0.
        valid_region: (H, W) bool, positions over the specimen.
        discs: (P, 3) the grains / particles as (x, y, radius), Å; radius 0 for an empty slot.
        target_type: () int32, the defect type of the search task (1 or 2).
    """

    atom_xy: Float[Array, "n 2"]
    atom_types: Int[Array, " n"]
    present: Bool[Array, " n"]
    defect_mask: Bool[Array, " n"]
    site_tile: Int[Array, " n"]
    phase_map: Int[Array, "H W"]
    valid_region: Bool[Array, "H W"]
    discs: Float[Array, "P 3"]
    target_type: Int[Array, ""]


class World(eqx.Module):
    """One STEMGym world: the specimen, how it is imaged, the dose rules and the truth.

    Attributes:
        specimen: the specimen before any exposure (capacity n, padded slots not present).
        imaging: multislice-calibrated incoherent HAADF at 200 keV, 21 mrad, 68–200 mrad.
        field: the raster of the whole field, (H, W) = (tiles·tile_px)² positions, step
            :data:`PIXEL_A`; tile t = row·tiles + column covers rows/columns
            [row·tile_px, (row+1)·tile_px) × [column·tile_px, (column+1)·tile_px).
        tile_sites: (T, k) int32 indices of the present sites within
            :data:`MARGIN_A` + :data:`MAX_DRIFT_A` of each tile; padding entries equal n.
        truth: the ground truth.
        current_pA, max_dwell_us, budget_e_per_A2, resolve_dose_e_per_A2, read_noise,
        drift_A_per_s, line_jitter_A, settle_s, flyback_us: () float, as in
            :class:`WorldSettings`.
        max_drift_A: () largest residual drift, Å.
        material, difficulty: () int32 indices into :data:`MATERIALS`, :data:`DIFFICULTIES`.
        tiles: tiles along each side (static).
        tile_px: probe positions along each side of a tile (static).
        max_steps: steps after which an episode is truncated, 4·T (static).
    """

    specimen: Specimen
    imaging: IncoherentImaging
    field: ScanGrid
    tile_sites: Int[Array, "T k"]
    truth: GroundTruth
    current_pA: Float[Array, ""]
    max_dwell_us: Float[Array, ""]
    budget_e_per_A2: Float[Array, ""]
    resolve_dose_e_per_A2: Float[Array, ""]
    read_noise: Float[Array, ""]
    drift_A_per_s: Float[Array, ""]
    line_jitter_A: Float[Array, ""]
    settle_s: Float[Array, ""]
    flyback_us: Float[Array, ""]
    max_drift_A: Float[Array, ""]
    material: Int[Array, ""]
    difficulty: Int[Array, ""]
    tiles: int = eqx.field(static=True)
    tile_px: int = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    @property
    def n_tiles(self) -> int:
        """T = tiles², the number of tiles (static)."""
        return self.tiles * self.tiles

    @property
    def tile_shape(self) -> tuple[int, int]:
        """(tile_px, tile_px), the probe positions of one tile (static)."""
        return (self.tile_px, self.tile_px)

    @property
    def tile_size_A(self) -> float:
        """Side of a tile, Å (static)."""
        return self.tile_px * self.field.step

    @property
    def pixel_A(self) -> float:
        """Probe step, Å (static)."""
        return self.field.step

    @property
    def n_discs(self) -> int:
        """P, the number of disc slots (static)."""
        return self.truth.discs.shape[-2]

    @property
    def field_lower_A(self) -> Float[Array, "2"]:
        """(2,) lower (x, y) corner of the field (edge of pixel [0, 0]), Å."""
        return self.field.origin - 0.5 * self.field.step

    def tile_origins(self) -> Float[Array, "T 2"]:
        """(T, 2) position (x, y) of pixel [0, 0] of each tile, Å."""
        index = jnp.arange(self.n_tiles)
        rc = jnp.stack([index % self.tiles, index // self.tiles], axis=-1)  # (column, row)
        return self.field.origin + rc * self.tile_size_A

    def tile_of(self, xy: Float[Array, "... 2"]) -> Int[Array, "..."]:
        """Tile holding each point (x, y) in Å, −1 outside the field (lower edges included)."""
        rc = jnp.floor((jnp.asarray(xy) - self.field_lower_A) / self.tile_size_A).astype(jnp.int32)
        inside = jnp.all((rc >= 0) & (rc < self.tiles), axis=-1)
        return jnp.where(inside, rc[..., 1] * self.tiles + rc[..., 0], -1)

    @property
    def dose_per_us(self) -> Float[Array, ""]:
        """Dose a tile receives per µs of dwell, e⁻/Å² (I·τ/e / step²)."""
        return electrons_per_position(self.current_pA, 1.0) / self.field.step**2

    @property
    def material_name(self) -> str:
        """Name of the material (needs a concrete world)."""
        return MATERIALS[int(self.material)]

    @property
    def difficulty_name(self) -> str:
        """Name of the difficulty level (needs a concrete world)."""
        return DIFFICULTIES[int(self.difficulty)]


# --------------------------------------------------------------------------------------------
# building


def fcc_column_counts(
    offsets_A, a_A: float, radius_A, max_radius_A: float | None = None
) -> Array:
    """Atoms of each [001] column of an fcc sphere of radius ``radius_A`` centred on a lattice
    point, by exact lattice-point counting (as :func:`~stemjax.physics.nanoparticle_on_support`).

    Args:
        offsets_A: (m, 2) column offsets from the centre, multiples of a/2, Å (concrete).
        a_A: fcc lattice parameter, Å (static).
        radius_A: sphere radius, Å; any shape (...) (may be traced).
        max_radius_A: static upper bound on ``radius_A``, Å; None takes ``max(radius_A)``
            (which must then be concrete).

    Returns:
        (..., m) atoms per column (float).
    """
    half = a_A / 2
    ij = np.rint(np.asarray(offsets_A) / half).astype(int)  # (m, 2)
    bound = float(np.max(np.asarray(radius_A))) if max_radius_A is None else float(max_radius_A)
    reach = int(np.ceil(bound / half)) + 1
    k = np.arange(-reach, reach + 1)
    parity_ok = (ij.sum(axis=1)[:, None] + k[None, :]) % 2 == 0  # (m, K)
    r2 = ((ij**2).sum(axis=1)[:, None] + k[None, :] ** 2) * half**2  # (m, K)
    radius = jnp.asarray(radius_A)[..., None, None]
    inside = jnp.asarray(parity_ok) & (jnp.asarray(r2) <= radius**2 * (1 + 1e-12))
    return jnp.sum(inside, axis=-1).astype(jnp.result_type(float))


def _draw_discs(u: Array, lower: np.ndarray, field_A: float, grid: int, r_lo: float,
                r_hi: float) -> Array:  # fmt: skip
    """(P, 3) discs on a jittered grid from (1 + 4P,) uniforms; radius 0 for unused slots.

    ⌈P/3⌉ … P discs are used (uniform), in a random subset of the P = grid² cells; each has a
    radius uniform in [r_lo, r_hi] and its centre is jittered so the disc stays 0.5 Å inside
    its cell (discs never overlap and never leave the field).
    """
    p = grid * grid
    cell = field_A / grid
    fewest = max(1, math.ceil(p / 3))
    number = fewest + jnp.floor(u[0] * (p - fewest + 1)).astype(jnp.int32)
    rank = jnp.argsort(jnp.argsort(u[1 : 1 + p]))
    used = rank < number
    radius = r_lo + u[1 + p : 1 + 2 * p] * (r_hi - r_lo)
    room = jnp.maximum(0.5 * cell - radius - 0.5, 0.0)
    index = np.arange(p)
    base = np.stack([index % grid, index // grid], axis=1) * cell + 0.5 * cell + lower
    jitter = (2.0 * u[1 + 2 * p :].reshape(p, 2) - 1.0) * room[:, None]
    discs = jnp.concatenate([base + jitter, radius[:, None]], axis=1)
    return jnp.where(used[:, None], discs, 0.0)


def _disc_radii(size: _Size) -> tuple[float, float]:
    cell = size.tiles * size.tile_px * PIXEL_A / size.disc_grid
    return 0.22 * cell, 0.40 * cell


def _cells(length: float, period: float) -> int:
    return max(1, math.ceil(length / period - 1e-9))


def _crystal(key, material: str, length: float) -> tuple[Specimen, np.ndarray]:
    """The pristine crystal covering [0, length]² and the (n,) site-kind labels."""
    if material in PEROVSKITES:
        a = PEROVSKITES[material][2]
        n = _cells(length, a)
        spec = perovskite(material, (n, n), CRYSTAL_THICKNESS_A)
        kinds = np.tile(np.array(["A", "B", "O", "O", "O"]), n * n)
    elif material == "SiGe":
        x = 0.25
        a = SI_LATTICE_PARAMETER + x * (GE_LATTICE_PARAMETER - SI_LATTICE_PARAMETER)
        cells = (_cells(length, a / math.sqrt(2)), _cells(length, a))
        spec = sige(key, x, cells, CRYSTAL_THICKNESS_A)
        kinds = np.tile(np.array(["Si", "Ge"]), spec.capacity // 2)
    elif material == "GaN":
        cells = (_cells(length, math.sqrt(3) * GAN_A), _cells(length, GAN_C))
        spec = gan(cells, CRYSTAL_THICKNESS_A)
        numbers = np.asarray(spec.atomic_numbers)
        kinds = np.where(numbers == atomic_number("Ga"), "Ga", "N")
    else:  # pragma: no cover - guarded by world_settings
        raise ValueError(material)
    return spec, kinds


def _add_defects(key, spec: Specimen, kinds: np.ndarray, material: str, fraction: float):
    rules, _ = _MATERIAL_DEFECTS[material]
    keys = jax.random.split(key, len(rules))
    for k, (kind, vacancies, substitute) in zip(keys, rules):
        spec = add_point_defects(
            k, spec, sites=jnp.asarray(kinds == kind),
            vacancy_fraction=fraction if vacancies else 0.0,
            substitution_fraction=fraction if substitute else 0.0, substitute=substitute,
        )
    if material == "SiGe":  # a vacant column: the Ge atoms of the column go too (not a defect)
        vacant = (spec.atom_types == VACANCY) & jnp.asarray(kinds == "Si")
        partner = jnp.roll(vacant, 1) & jnp.asarray(kinds == "Ge")
        occupancies = jnp.where(partner, 0.0, spec.occupancies).astype(spec.occupancies.dtype)
        spec = eqx.tree_at(lambda s: s.occupancies, spec, occupancies)
    return spec


def _with_discs(matrix: Specimen, second: Specimen, discs: Array) -> Specimen:
    """Matrix outside the discs (phase 0), ``second`` inside them (phase 1)."""
    in_matrix = inside_domains(matrix.atom_xy, discs)
    in_second = inside_domains(second.atom_xy, discs)
    outer = eqx.tree_at(lambda s: (s.present, s.phases),
                        matrix, (matrix.present & ~in_matrix, jnp.zeros_like(matrix.phases)))
    inner = eqx.tree_at(lambda s: (s.present, s.phases),
                        second, (second.present & in_second, jnp.ones_like(second.phases)))
    return _join([outer, inner], discs)


def _join(parts: list[Specimen], domains: Array) -> Specimen:
    cell = functools.reduce(jnp.maximum, [p.cell for p in parts])
    fields = ("positions", "atomic_numbers", "counts", "occupancies", "debye_waller",
              "displacement_threshold_ev", "atom_types", "phases", "present")  # fmt: skip
    joined = {f: jnp.concatenate([getattr(p, f) for p in parts]) for f in fields}
    return Specimen(cell=cell, domains=jnp.asarray(domains, cell.dtype), **joined)


def _nanoparticles(key, length: float, lower: np.ndarray, field_A: float, size: _Size,
                   fraction: float) -> tuple[Specimen, Array]:  # fmt: skip
    k_support, k_discs, k_defects = jax.random.split(key, 3)
    r_lo, r_hi = _disc_radii(size)
    base = nanoparticle_on_support(
        k_support, "Au", radius=r_hi, cell=(length, length),
        support_thickness=SUPPORT_THICKNESS_A, support_column_area=SUPPORT_COLUMN_AREA_A2,
    )
    phases = np.asarray(base.phases)
    m = int((phases == 1).sum())  # particle columns come first
    offsets = np.asarray(base.atom_xy[:m]) - length / 2
    z = np.asarray(base.positions[:m, 2])
    p = size.disc_grid**2
    discs = _draw_discs(jax.random.uniform(k_discs, (1 + 4 * p,)), lower, field_A,
                        size.disc_grid, r_lo, r_hi)  # fmt: skip
    counts = fcc_column_counts(offsets, FCC_LATTICE_PARAMETERS["Au"], discs[:, 2], r_hi)  # (P, m)
    xy = discs[:, None, :2] + offsets[None]
    particles = make_specimen(
        jnp.concatenate([xy.reshape(-1, 2), jnp.tile(jnp.asarray(z), p)[:, None]], axis=1),
        atomic_number("Au"), base.cell, counts=counts.reshape(-1),
        debye_waller=float(base.debye_waller[0]), phases=1,
        present=(counts > 0).reshape(-1),
    )
    support = jax.tree.map(lambda a: a[m:] if a.ndim and a.shape[0] == base.capacity else a, base)
    spec = _join([particles, support], discs)
    kinds = np.concatenate([np.full(p * m, "particle"), np.full(support.capacity, "support")])
    spec = _add_defects(k_defects, spec, kinds, "Nanoparticles", fraction)
    return spec, discs


def _pad(spec: Specimen, capacity: int, name: str) -> Specimen:
    n = spec.capacity
    if n > capacity:
        raise ValueError(f"the {name} specimen has {n} sites, more than the size's capacity "
                         f"{capacity}; raise SIZES[...].capacity")  # fmt: skip
    extra = make_specimen(np.zeros((capacity - n, 3)), 1, spec.cell, counts=0.0, present=False)
    return _join([spec, extra], spec.domains)


def _tile_sites(spec: Specimen, field: ScanGrid, tiles: int, tile_px: int, width: int,
                name: str) -> Array:  # fmt: skip
    """(T, width) indices of present sites within PAD_A of each tile, padded with n."""
    n = spec.capacity
    tile_A = tile_px * field.step
    lower = np.asarray(field.origin) - 0.5 * field.step
    index = np.arange(tiles * tiles)
    lo = lower + np.stack([index % tiles, index // tiles], axis=1) * tile_A - PAD_A  # (T, 2)
    hi = lo + tile_A + 2 * PAD_A
    xy = np.asarray(spec.atom_xy)
    near = np.all((xy[None] >= lo[:, None]) & (xy[None] < hi[:, None]), axis=-1)
    near &= np.asarray(spec.present)[None]
    most = int(near.sum(axis=1).max())
    if most > width:
        raise ValueError(f"a tile of the {name} world has {most} sites within {PAD_A} Å, more "
                         f"than the table width {width}; raise SIZES[...].sites_per_tile")
    order = np.argsort(~near, axis=1, kind="stable")[:, :width]
    return jnp.asarray(np.where(np.take_along_axis(near, order, 1), order, n), jnp.int32)


def make_world(
    key: PRNGKeyArray,
    material: str = "SrTiO3",
    difficulty: str = "medium",
    size: str = "default",
    **changes,
) -> World:
    """Build one STEMGym world from ``key`` (concrete; not traced by jit or vmap).

    The specimen covers the field plus :data:`PAD_A` on every side. Crystals (40 Å thick)
    are SrTiO3 and BaTiO3 along [001], Si0.75Ge0.25 along [110] and GaN along [11-20];
    their grains (phase 1) are the same crystal, rotated by 30°, with their own defects.
    "Nanoparticles": fcc Au spheres along [001] on 30 Å of amorphous carbon. Point defects
    per eligible site, each with probability ``defect_fraction``: SrTiO3 Sr vacancies and Nb
    on Ti; BaTiO3 Ba vacancies and Sr on Ba; SiGe column vacancies and Ga on Si; GaN Ga
    vacancies and Fe on Ga; Au particle-column vacancies and Pd on Au. Search targets:
    substitutions (2) in SrTiO3, SiGe and Nanoparticles, vacancies (1) in BaTiO3 and GaN.
    Displacement thresholds are the library's (20 eV) times ``threshold_scale``.

    Args:
        key: PRNG key for the defects, discs and (SiGe, support) random structure.
        material: one of :data:`MATERIALS`.
        difficulty: one of :data:`DIFFICULTIES`.
        size: one of :data:`SIZES`.
        **changes: settings to override (names and ranges as in :class:`WorldSettings`).

    Returns:
        The world; all worlds of one ``size`` have the same array shapes.
    """
    settings = world_settings(material, difficulty, size, **changes)
    return _build(key, settings)


def _build(key, s: WorldSettings) -> World:
    size = SIZES[s.size]
    field_A = size.tiles * size.tile_px * PIXEL_A
    length = field_A + 2 * PAD_A
    lower = np.array([PAD_A, PAD_A])
    field = ScanGrid((size.tiles * size.tile_px,) * 2, PIXEL_A, tuple(lower + 0.5 * PIXEL_A))
    k_matrix, k_second, k_discs, k_def1, k_def2 = jax.random.split(key, 5)

    if s.material == "Nanoparticles":
        spec, discs = _nanoparticles(k_matrix, length, lower, field_A, size, s.defect_fraction)
    else:
        p = size.disc_grid**2
        discs = _draw_discs(jax.random.uniform(k_discs, (1 + 4 * p,)), lower, field_A,
                            size.disc_grid, *_disc_radii(size))  # fmt: skip
        matrix, kinds = _crystal(k_matrix, s.material, length)
        grain, _ = _crystal(k_second, s.material, length)
        matrix = _add_defects(k_def1, matrix, kinds, s.material, s.defect_fraction)
        grain = rotated(_add_defects(k_def2, grain, kinds, s.material, s.defect_fraction),
                        GRAIN_ROTATION_DEG)  # fmt: skip
        spec = _with_discs(matrix, grain, discs)

    thresholds = spec.displacement_threshold_ev * s.threshold_scale
    spec = eqx.tree_at(lambda t: t.displacement_threshold_ev, spec, thresholds)
    spec = _pad(spec, size.capacity, s.material)
    tile_sites = _tile_sites(spec, field, size.tiles, size.tile_px, size.sites_per_tile,
                             s.material)  # fmt: skip

    xy = spec.atom_xy
    rc = jnp.floor((xy - jnp.asarray(lower)) / (size.tile_px * PIXEL_A)).astype(jnp.int32)
    inside = jnp.all((rc >= 0) & (rc < size.tiles), axis=-1) & spec.present
    site_tile = jnp.where(inside, rc[:, 1] * size.tiles + rc[:, 0], -1)
    truth = GroundTruth(
        atom_xy=xy,
        atom_types=spec.atom_types,
        present=spec.present,
        defect_mask=spec.defect_mask,
        site_tile=site_tile.astype(jnp.int32),
        phase_map=spec.phase_map(field),
        valid_region=spec.valid_region(field),
        discs=jnp.asarray(discs, xy.dtype),
        target_type=jnp.asarray(_MATERIAL_DEFECTS[s.material][1], jnp.int32),
    )
    probe = Probe(ENERGY_KEV, SEMIANGLE_MRAD)
    imaging = IncoherentImaging(probe, AnnularDetector(*STEMGYM_HAADF), margin=MARGIN_A,
                                calibration="multislice")  # fmt: skip
    f = lambda v: jnp.asarray(v, jnp.result_type(float))  # noqa: E731
    return World(
        specimen=spec, imaging=imaging, field=field, tile_sites=tile_sites, truth=truth,
        current_pA=f(s.current_pA), max_dwell_us=f(s.max_dwell_us),
        budget_e_per_A2=f(s.budget_e_per_A2), resolve_dose_e_per_A2=f(s.resolve_dose_e_per_A2),
        read_noise=f(s.read_noise), drift_A_per_s=f(s.drift_A_per_s),
        line_jitter_A=f(s.line_jitter_A), settle_s=f(s.settle_s), flyback_us=f(s.flyback_us),
        max_drift_A=f(MAX_DRIFT_A),
        material=jnp.asarray(MATERIALS.index(s.material), jnp.int32),
        difficulty=jnp.asarray(DIFFICULTIES.index(s.difficulty), jnp.int32),
        tiles=size.tiles, tile_px=size.tile_px, max_steps=4 * size.tiles**2,
    )
