"""Random particle libraries: how large they can be, and simulated libraries to explore.

Paper 004 (Barakati et al., shared/papers/004) proposes pooling many compositions into one
STEM specimen as a random library of nanoparticles, found by an overview scan, identified by
EDX and characterised one at a time by EELS.

**Scale (§III, eq. 1).** Particles of Gaussian radius (mean μ, standard deviation σ) covering
a fraction of a grid of area A occupy on average π(μ² + σ²) each, so the covered area
A_c = coverage · A holds

    E[N] = A_c / (π (μ² + σ²))                                             eq. 1

particles. A composition grid of step 0.1 has 10^D points in D dimensions (the paper's count),
so the library supports D = ⌊log₁₀ E[N]⌋ dimensions (:func:`composition_dimensions`).

**Simulated library (§IV.3).** :func:`make_library` draws one library from a key: a Poisson
number of particles (density ρ over the accessible area) at uniform positions, radii from a
Gaussian truncated below at ``min_radius_nm``, compositions from a Dirichlet prior on the
q-component simplex (all ones: uniform), and a hidden target over composition space, a sum of
Gaussians f(c) = Σ_k a_k exp(−|c − m_k|² / (2 w²)) with centres m_k from the same prior. The
accessible area is tiled by beam-shift fields of view, the *regions*; the particles of each
region are listed in a fixed-capacity table with a mask so that a campaign can read the
particles within beam-shift reach with fixed shapes. Everything is a fixed-capacity array with
a mask, so ``jax.vmap`` over keys draws one library per campaign.

Units: stage coordinates and lengths in µm, areas in µm² (the grid of eq. 1 in mm²), radii in
nm, compositions as fractions summing to 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from stemjax._validation import (
    check_in_range,
    check_int_at_least,
    check_nonnegative,
    check_positive,
)
from stemjax.acquisition._checks import check_simplex
from stemjax.acquisition.region_switch import (
    dirichlet_compositions,
    poisson_capacity,
    poisson_from_uniform,
)

__all__ = [
    "LibraryConfig",
    "ParticleLibrary",
    "composition_dimensions",
    "eval_grid",
    "expected_particle_count",
    "make_library",
    "simplex_grid",
    "target_function",
]


# --------------------------------------------------------------------------------------------
# eq. 1: how many particles a grid holds, and how many composition dimensions they support


def expected_particle_count(
    area_mm2: float | ArrayLike,
    coverage: float | ArrayLike,
    mean_radius_nm: float | ArrayLike,
    std_radius_nm: float | ArrayLike,
) -> np.ndarray:
    """E[N] = A_c / (π(μ² + σ²)) with A_c = coverage · area (paper 004, eq. 1).

    Args:
        area_mm2: usable grid area A, mm² (> 0); the paper takes 2/3 of a 2 × 2 mm² grid, 2.67.
        coverage: fraction of A covered by particles, in (0, 1] (the paper: 0.5).
        mean_radius_nm: mean particle radius μ, nm (> 0).
        std_radius_nm: standard deviation σ of the radius, nm (≥ 0; the paper: 0.3 μ).

    Returns:
        Expected particle count, broadcast shape of the arguments (NumPy float64).
    """
    check_positive("area_mm2", area_mm2, "mm²")
    check_in_range("coverage", coverage, 0.0, 1.0)
    check_positive("coverage", coverage)
    check_positive("mean_radius_nm", mean_radius_nm, "nm")
    check_nonnegative("std_radius_nm", std_radius_nm, "nm")
    covered_nm2 = np.asarray(coverage, float) * np.asarray(area_mm2, float) * 1e12
    mu, sigma = np.asarray(mean_radius_nm, float), np.asarray(std_radius_nm, float)
    return covered_nm2 / (np.pi * (mu**2 + sigma**2))


def composition_dimensions(particle_count: float | ArrayLike, step: float = 0.1) -> np.ndarray:
    """Largest D with (1/step)^D ≤ particle_count: the dimensions a library can sample.

    A grid of ``step`` has 1/step points per composition axis, (1/step)^D in D dimensions (the
    counting of paper 004, §III); one particle per grid point needs that many particles.

    Args:
        particle_count: number of particles (≥ 1), e.g. :func:`expected_particle_count`.
        step: grid step in composition, in (0, 1) (0.1: ten points per axis).

    Returns:
        D as an integer array of the shape of ``particle_count``.
    """
    check_in_range("particle_count", particle_count, 1.0, np.inf)
    check_positive("step", step)
    if not float(step) < 1.0:
        raise ValueError(f"step must lie in (0, 1); got {step!r}")
    count = np.asarray(particle_count, float)
    per_axis = 1.0 / float(step)
    d = np.floor(np.log(count) / np.log(per_axis) + 1e-9)  # exact powers count as reached
    return d.astype(int)


# --------------------------------------------------------------------------------------------
# composition grids


def simplex_grid(n_components: int, divisions: int) -> np.ndarray:
    """All compositions with fractions that are multiples of 1/divisions, (G, q) float32.

    G = C(divisions + q − 1, q − 1): 66 points for q = 3 at step 0.1, 286 for q = 4.
    """
    q = check_int_at_least("n_components", n_components, 2)
    k = check_int_at_least("divisions", divisions, 1)
    rows = []
    for bars in combinations(range(k + q - 1), q - 1):  # stars and bars
        edges = (-1, *bars, k + q - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(q)])
    return (np.asarray(rows, float) / k).astype(np.float32)


def eval_grid(n_components: int, max_points: int = 128) -> np.ndarray:
    """The finest simplex grid of step 1/k (k ≤ 10) with at most ``max_points`` points.

    Step 0.1 for 3 components (66 points), 1/7 for 4 (120 points), 0.2 for 5 (126 points):
    the compositions on which campaigns measure their surrogate's uncertainty and error.
    """
    q = check_int_at_least("n_components", n_components, 2)
    check_int_at_least("max_points", max_points, q)
    for k in range(10, 0, -1):
        if math.comb(k + q - 1, q - 1) <= max_points:
            return simplex_grid(q, k)
    return simplex_grid(q, 1)


# --------------------------------------------------------------------------------------------
# the hidden target


def _target(compositions, centres, amplitudes, width):
    diff = compositions[..., None, :] - centres
    sq = jnp.sum(diff * diff, axis=-1)
    return jnp.sum(amplitudes * jnp.exp(-0.5 * sq / width**2), axis=-1)


def target_function(
    compositions: Float[ArrayLike, "... q"],
    centres: Float[ArrayLike, "k q"],
    amplitudes: Float[ArrayLike, " k"],
    width: float | Float[ArrayLike, ""],
) -> Float[Array, "..."]:
    """f(c) = Σ_k a_k exp(−|c − m_k|² / (2 w²)), the functionality EELS reveals (§IV.3).

    Args:
        compositions: (..., q) compositions on the simplex.
        centres: (K, q) peak centres m_k on the simplex.
        amplitudes: (K,) peak heights a_k.
        width: w > 0, composition units (the paper: 0.1).

    Returns:
        f at each composition, shape (...).
    """
    check_simplex("compositions", compositions)
    check_simplex("centres", centres)
    check_positive("width", width)
    c = jnp.asarray(compositions, jnp.result_type(compositions, float))
    return _target(c, jnp.asarray(centres, c.dtype), jnp.asarray(amplitudes, c.dtype), width)


# --------------------------------------------------------------------------------------------
# configuration


def _pair(name: str, value) -> tuple[float, float]:
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    if ok:
        try:
            value = (float(value[0]), float(value[1]))
        except (TypeError, ValueError):
            ok = False
    if not ok or not all(map(math.isfinite, value)) or min(value) <= 0:
        raise ValueError(f"{name} must be a pair (x, y) of finite lengths > 0 µm; got {value!r}")
    return value


@dataclass(frozen=True)
class LibraryConfig:
    """What a simulated library looks like (static: hashable, every size a Python number).

    Defaults are paper 004 §IV.3: a 300 × 300 µm accessible area at 0.02 particles µm⁻²,
    radii 20 ± 10 nm, 30 × 30 µm beam-shift fields of view, three components (a 3-D
    composition space), targets from Gaussians of width 0.1.

    Attributes:
        area_um: (x, y) size of the stage-accessible area, µm.
        fov_um: (x, y) size of one beam-shift field of view (a region), µm; at most the area.
        density_per_um2: mean particle density ρ, µm⁻² (≥ 0).
        radius_mean_nm, radius_std_nm: Gaussian radius distribution, nm.
        min_radius_nm: radii are truncated below here, nm (> 0).
        n_components: q, the number of elements (the composition space is (q − 1)-simplex).
        concentration: Dirichlet concentration of the composition prior, one value for all
            components or a tuple of q values (> 0); 1.0 is uniform on the simplex.
        n_peaks: number K of Gaussians in the target. The paper's text reads "106"; we read
            it as garbled and default to 10 (a multimodal landscape on the simplex).
        peak_width: w of the target's Gaussians, composition units (> 0).
        amplitude_range: (low, high) of the peak heights, drawn uniformly.
        capacity: particle slots; default ⌈λ + 10√λ + 10⌉ for λ = ρ·area, so that
            P(N > capacity) < 1e-9.
        region_capacity: particle slots per region (the candidates a campaign scores at each
            step); default ⌈λ + 6√λ + 6⌉ for λ = ρ·(FOV area): 50 for the paper's 18 expected
            particles, overflowing (the extra particles of that region are then dropped) with
            probability below 1e-8 per region.
    """

    area_um: tuple[float, float] = (300.0, 300.0)
    fov_um: tuple[float, float] = (30.0, 30.0)
    density_per_um2: float = 0.02
    radius_mean_nm: float = 20.0
    radius_std_nm: float = 10.0
    min_radius_nm: float = 1.0
    n_components: int = 3
    concentration: float | tuple[float, ...] = 1.0
    n_peaks: int = 10
    peak_width: float = 0.1
    amplitude_range: tuple[float, float] = (0.5, 1.0)
    capacity: int | None = None
    region_capacity: int | None = None

    def __post_init__(self):
        area = _pair("area_um", self.area_um)
        fov = _pair("fov_um", self.fov_um)
        for i, axis in enumerate("xy"):
            if fov[i] > area[i]:
                raise ValueError(
                    f"fov_um must fit in the accessible area (fov_um[{i}] <= area_um[{i}] = "
                    f"{area[i]} µm along {axis}); got fov_um={fov}"
                )
        object.__setattr__(self, "area_um", area)
        object.__setattr__(self, "fov_um", fov)
        check_nonnegative("density_per_um2", self.density_per_um2, "µm⁻²")
        check_positive("radius_mean_nm", self.radius_mean_nm, "nm")
        check_nonnegative("radius_std_nm", self.radius_std_nm, "nm")
        check_positive("min_radius_nm", self.min_radius_nm, "nm")
        q = check_int_at_least("n_components", self.n_components, 2)
        conc = self.concentration
        if isinstance(conc, (tuple, list)):
            if len(conc) != q:
                raise ValueError(f"concentration must be one value or {q} values (n_components);"
                                 f" got {len(conc)}: {conc!r}")  # fmt: skip
            object.__setattr__(self, "concentration", tuple(float(c) for c in conc))
        check_positive("concentration", self.concentration)
        check_int_at_least("n_peaks", self.n_peaks, 1)
        check_positive("peak_width", self.peak_width)
        try:
            low, high = (float(v) for v in self.amplitude_range)
        except (TypeError, ValueError):
            low, high = math.nan, math.nan
        object.__setattr__(self, "amplitude_range", (low, high))
        if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
            raise ValueError(f"amplitude_range must be (low, high) with 0 <= low <= high; got "
                             f"{self.amplitude_range!r}")  # fmt: skip
        if self.capacity is not None:
            check_int_at_least("capacity", self.capacity, 1)
        if self.region_capacity is not None:
            check_int_at_least("region_capacity", self.region_capacity, 1)

    # geometry (all NumPy, from the static fields)
    @property
    def grid_shape(self) -> tuple[int, int]:
        """(nx, ny) regions along x and y (the last ones narrower when the FOV does not divide
        the area)."""
        return tuple(int(math.ceil(a / f - 1e-9)) for a, f in zip(self.area_um, self.fov_um))

    @property
    def n_regions(self) -> int:
        nx, ny = self.grid_shape
        return nx * ny

    @property
    def mean_count(self) -> float:
        """ρ · area: the expected number of particles."""
        return self.density_per_um2 * self.area_um[0] * self.area_um[1]

    @property
    def particle_capacity(self) -> int:
        return self.capacity or poisson_capacity(self.mean_count)

    @property
    def region_slots(self) -> int:
        lam = self.density_per_um2 * self.fov_um[0] * self.fov_um[1]
        return self.region_capacity or int(math.ceil(lam + 6.0 * math.sqrt(lam) + 6.0))

    def region_geometry(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centres (R, 2) µm, areas (R,) µm², cells (R, 2) int (ix, iy)); region r = iy·nx + ix."""
        nx, ny = self.grid_shape
        iy, ix = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        ix, iy = ix.ravel(), iy.ravel()
        lo = np.stack([ix * self.fov_um[0], iy * self.fov_um[1]], -1)
        hi = np.minimum(lo + np.asarray(self.fov_um), np.asarray(self.area_um))
        centres = 0.5 * (lo + hi)
        areas = np.prod(hi - lo, axis=-1)
        return centres.astype(np.float32), areas.astype(np.float32), np.stack([ix, iy], -1)

    def concentration_vector(self) -> np.ndarray:
        c = self.concentration
        vec = np.full(self.n_components, c) if not isinstance(c, tuple) else np.asarray(c)
        return vec.astype(np.float32)


# --------------------------------------------------------------------------------------------
# the library


class ParticleLibrary(eqx.Module):
    """One random particle library (fixed capacity P particles, R regions of M slots).

    Attributes:
        positions_um: (P, 2) particle centres (x, y) on the stage, µm.
        radii_nm: (P,) particle radii, nm.
        compositions: (P, q) true compositions on the simplex.
        present: (P,) True for slots holding a particle.
        region: (P,) region index of each particle (R for empty slots).
        members: (R, M) particle index of each region's slots (0 where unused).
        member_mask: (R, M) True where ``members`` holds a particle of the region.
        region_centres_um: (R, 2) centres of the fields of view, µm.
        region_areas_um2: (R,) their areas, µm².
        region_cells: (R, 2) (ix, iy) position of each region in the tiling.
        peak_centres: (K, q) centres of the target's Gaussians.
        peak_amplitudes: (K,) their heights.
        targets: (P,) the hidden target f(c) of each particle.
        config: the :class:`LibraryConfig` (static).
    """

    positions_um: Float[Array, "P 2"]
    radii_nm: Float[Array, " P"]
    compositions: Float[Array, "P q"]
    present: Bool[Array, " P"]
    region: Int[Array, " P"]
    members: Int[Array, "R M"]
    member_mask: Bool[Array, "R M"]
    region_centres_um: Float[Array, "R 2"]
    region_areas_um2: Float[Array, " R"]
    region_cells: Int[Array, "R 2"]
    peak_centres: Float[Array, "K q"]
    peak_amplitudes: Float[Array, " K"]
    targets: Float[Array, " P"]
    config: LibraryConfig = eqx.field(static=True)

    @property
    def count(self) -> Int[Array, ""]:
        """Number of particles (N ≤ P)."""
        return jnp.sum(self.present, axis=-1)

    def target(self, compositions: Float[ArrayLike, "... q"]) -> Float[Array, "..."]:
        """The hidden target f at arbitrary compositions (see :func:`target_function`)."""
        check_simplex("compositions", compositions)
        c = jnp.asarray(compositions, self.peak_centres.dtype)
        return _target(c, self.peak_centres, self.peak_amplitudes, self.config.peak_width)


def make_library(key: PRNGKeyArray, config: LibraryConfig = LibraryConfig()) -> ParticleLibrary:
    """Draw one library from ``key`` (pure and jittable; ``jax.vmap`` over keys for many).

    Particles: N ~ Poisson(ρ · area), clipped to the capacity, uniform over the area; radii
    μ + σ·z with z a standard normal truncated so that r ≥ ``min_radius_nm``; compositions from
    Dirichlet(concentration). Target: ``n_peaks`` Gaussians of width ``peak_width`` with centres
    from the same prior and heights uniform in ``amplitude_range``.
    """
    if not isinstance(config, LibraryConfig):
        raise TypeError(f"config must be a LibraryConfig; got {type(config)!r}")
    return _make_library(key, config)


@eqx.filter_jit
def _make_library(key, config: LibraryConfig) -> ParticleLibrary:
    p, m, q, k = config.particle_capacity, config.region_slots, config.n_components, config.n_peaks
    dtype = jnp.result_type(float)
    # one uniform draw for everything (each separate random call adds compile time on CPU)
    k_u, k_dir = jax.random.split(key)
    sizes = (1, 2 * p, p, p * q, k * q, k)
    tiny = jnp.finfo(dtype).tiny
    u = jax.random.uniform(k_u, (sum(sizes),), dtype, minval=tiny, maxval=1.0)
    u_n, u_pos, u_rad, u_comp, u_peak, u_amp = jnp.split(u, np.cumsum(sizes)[:-1])
    n = poisson_from_uniform(u_n[0], config.mean_count, p)
    present = jnp.arange(p) < n
    positions = u_pos.reshape(p, 2) * jnp.asarray(config.area_um, dtype)
    mu, sd = config.radius_mean_nm, config.radius_std_nm
    if sd > 0:  # inverse-CDF draw of a normal truncated below at min_radius_nm
        below = jax.scipy.special.ndtr(jnp.asarray((config.min_radius_nm - mu) / sd, dtype))
        z = jax.scipy.special.ndtri(jnp.clip(below + u_rad * (1 - below), 0.0, 1.0 - 1e-7))
        radii = jnp.maximum(mu + sd * z, config.min_radius_nm)
    else:
        radii = jnp.full((p,), max(mu, config.min_radius_nm), dtype)
    alpha = config.concentration_vector()
    if np.all(alpha == 1.0):  # uniform simplex: normalised unit exponentials
        e_comp, e_peak = -jnp.log(u_comp).reshape(p, q), -jnp.log(u_peak).reshape(k, q)
        compositions = e_comp / jnp.sum(e_comp, -1, keepdims=True)
        peak_centres = e_peak / jnp.sum(e_peak, -1, keepdims=True)
    else:
        both = dirichlet_compositions(jnp.asarray(alpha, dtype))(k_dir, (p + k,))
        compositions, peak_centres = both[:p], both[p:]
    low, high = config.amplitude_range
    amplitudes = low + (high - low) * u_amp
    targets = _target(compositions, peak_centres, amplitudes, config.peak_width)

    centres, areas, cells = config.region_geometry()
    nx, ny = config.grid_shape
    r_count = nx * ny
    ix = jnp.clip(jnp.floor(positions[:, 0] / config.fov_um[0]), 0, nx - 1).astype(jnp.int32)
    iy = jnp.clip(jnp.floor(positions[:, 1] / config.fov_um[1]), 0, ny - 1).astype(jnp.int32)
    region = jnp.where(present, iy * nx + ix, r_count)
    order = jnp.argsort(region, stable=True)  # particles grouped by region, empty slots last
    counts = jnp.zeros((r_count + 1,), jnp.int32).at[region].add(1)[:r_count]
    starts = jnp.cumsum(counts) - counts
    slot = jnp.arange(m)
    member_mask = slot[None, :] < counts[:, None]  # a region's particles beyond M are dropped
    members = jnp.where(member_mask, order[jnp.minimum(starts[:, None] + slot, p - 1)], 0)
    return ParticleLibrary(
        positions, radii, compositions, present, region.astype(jnp.int32),
        members.astype(jnp.int32), member_mask, jnp.asarray(centres, dtype),
        jnp.asarray(areas, dtype), jnp.asarray(cells, jnp.int32), peak_centres, amplitudes,
        targets, config,
    )  # fmt: skip
