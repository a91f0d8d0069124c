"""Simulated structure–property worlds, rendered with the stemjax forward model.

Each world is drawn from a key by a pure, jittable function ``f(key, config) -> World`` whose
config is static (all its fields set array sizes or choose materials), so

    worlds = jax.vmap(lambda k: domain_world(k, config))(jax.random.split(key, 64))

builds one fresh world per campaign of a sweep, stacked along a leading axis. Defaults give
the geometry of the PFM benchmark: a 50 × 50 image, 16 × 16 patches centred on rows/cols
8 … 42 (1225 candidates) and 10 seeds drawn from the key.

- :func:`domain_world`: a perovskite film with disc-shaped domains of a second composition
  (and optionally a rotated lattice), imaged by incoherent HAADF with a coarse probe and
  Poisson noise; the scalarizer peaks on the domain walls.
- :func:`particle_world`: metal nanoparticles on a jittered grid, imaged the same way; the
  scalarizer is a plasmon-like gap-mode field, strongest in the narrowest gaps between
  neighbouring particles and weaker at isolated edges.

Both scalarizers are phenomenological (shapes chosen to be physically plausible, not solved
from electrodynamics or Landau theory). Inputs (patches of the noisy image) are min-max
normalised over the whole image to [0, 1], as in the PFM data. Targets lie in [0, 1] on a
fixed physical scale (1 on a wall, or in a gap between touching particles), clipped after
the optional target noise; they are *not* stretched world by world, so worlds drawn for a
sweep share one scale and a patch → target map learned in one world holds in another (a
world whose gaps are all wide has no target near 1). :func:`domain_ground_truth` and
:func:`particle_ground_truth` return the hidden layout behind a world drawn with the same key.

Imaging caveat: to render a 50 × 50 field cheaply, the default probes have small convergence
semi-angles (3 mrad, 1.5 mrad), which band-limit the image so that the lattice (domain world)
and the coarse-grained columns (particle world) are not resolved and only composition and
mass–thickness contrast remain. The unscreened Rutherford law of
:class:`~stemjax.physics.IncoherentImaging` overestimates scattering beyond such small
angles, so thick columns saturate early (flat-topped particles); the images are meant to carry
structure, not calibrated intensities.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from stemjax._validation import check_int_at_least, check_nonnegative, check_positive
from stemjax.physics.crystals import FCC_LATTICE_PARAMETERS, PEROVSKITES, perovskite
from stemjax.physics.defects import inside_domains, rotated
from stemjax.physics.elements import atomic_number
from stemjax.physics.haadf import IncoherentImaging
from stemjax.physics.probe import Probe
from stemjax.physics.scan import ScanGrid
from stemjax.physics.specimen import Specimen, concatenate, make_specimen
from stemjax.worlds.structure_property import World, candidate_centres

__all__ = [
    "DomainWorldConfig",
    "DomainTruth",
    "ParticleWorldConfig",
    "ParticleTruth",
    "domain_world",
    "domain_ground_truth",
    "particle_world",
    "particle_ground_truth",
]

_MARGIN_A = 10.0  # specimen beyond the scanned field on every side, Å (= the imaging margin)


# --------------------------------------------------------------------------------------------
# shared checks and helpers


def _check_shape_and_patch(image_shape, patch_size, n_seeds) -> None:
    if not isinstance(image_shape, tuple) or len(image_shape) != 2:
        raise ValueError(f"image_shape must be a tuple (H, W) of ints; got {image_shape!r}")
    h = check_int_at_least("image_shape[0]", image_shape[0], 2)
    w = check_int_at_least("image_shape[1]", image_shape[1], 2)
    p = check_int_at_least("patch_size", patch_size, 1)
    if p > min(h, w):
        raise ValueError(f"patch_size must lie in [1, {min(h, w)}] pixels (the image's smaller "
                         f"side); got {p}")
    n = (h - p + 1) * (w - p + 1)
    s = check_int_at_least("n_seeds", n_seeds, 1)
    if s > n:
        raise ValueError(f"n_seeds must lie in [1, {n}] (the number of candidates); got {s}")


def _check_range(name: str, pair, low: float, unit: str) -> None:
    ok = (isinstance(pair, tuple) and len(pair) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair))
    if not ok or not (low <= pair[0] <= pair[1]) or not all(map(math.isfinite, pair)):
        raise ValueError(f"{name} must be a tuple (low, high) with {low} <= low <= high{unit}; "
                         f"got {pair!r}")


def _check_key(key) -> None:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key (use jax.vmap for many); got a key "
                             f"array of shape {key.shape}")
    elif key.shape != (2,) or key.dtype != jnp.uint32:
        raise ValueError(f"key must be a single PRNG key (jax.random.key or PRNGKey, use "
                         f"jax.vmap for many); got an array of shape {key.shape}, dtype "
                         f"{key.dtype}")


def _normalise(x: Array) -> Array:
    """Min-max scaling to [0, 1]; all zeros when ``x`` is constant."""
    low, high = jnp.min(x), jnp.max(x)
    span = high - low
    scaled = jnp.where(x >= high, 1.0, (x - low) / jnp.where(span > 0, span, 1.0))
    return jnp.where(span > 0, scaled, 0.0)


_SMALL_MEAN = 10.0  # below: CDF inversion; above: transformed rejection
_INVERSION_TERMS = 40  # P(X >= 40) < 1e-11 for a mean below 10
_PROPOSALS = 8  # rejection proposals per pixel; all rejected with probability < 1e-7


def _shot_noise(key, mean: Array) -> Array:
    """Poisson counts with the given means (≥ 0), any shape, as floats.

    The same distribution as :func:`stemjax.physics.poisson_counts`, drawn without loops so
    that it compiles in a fraction of the time (it is compiled once per world config, and
    again under ``vmap``): means below 10 invert the CDF over 40 terms; larger means use the
    transformed rejection with squeeze of Hörmann (Insurance Math. Econom. 12, 39 (1993))
    with 8 proposals drawn at once, taking the first accepted. If all 8 are rejected
    (probability < 10⁻⁷ per pixel) the rounded normal approximation is used.
    """
    dtype = mean.dtype
    lam = mean.ravel()
    n = lam.shape[0]
    u = jax.random.uniform(key, ((2 * _PROPOSALS + 1) * n,), dtype)

    low = jnp.minimum(lam, _SMALL_MEAN)
    k = np.arange(_INVERSION_TERMS, dtype=float)
    log_pmf = (k[:, None] * jnp.log(jnp.maximum(low, jnp.finfo(dtype).tiny)) - low
               - jnp.asarray(jax.scipy.special.gammaln(k + 1.0), dtype)[:, None])
    small = jnp.sum(u[:n] > jnp.cumsum(jnp.exp(log_pmf), axis=0), axis=0).astype(dtype)
    small = jnp.where(low > 0, small, 0.0)

    high = jnp.maximum(lam, _SMALL_MEAN)
    root, log_mean = jnp.sqrt(high), jnp.log(high)
    b = 0.931 + 2.53 * root
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    pairs = u[n:].reshape(2, _PROPOSALS, n)
    centred, v = pairs[0] - 0.5, pairs[1]
    us = 0.5 - jnp.abs(centred)
    proposal = jnp.floor((2.0 * a / us + b) * centred + high + 0.43)
    quick = (us >= 0.07) & (v <= v_r)
    excluded = (proposal < 0) | ((us < 0.013) & (v > us))
    log_ratio = jnp.log(v * inv_alpha / (a / us**2 + b))
    log_target = -high + proposal * log_mean - jax.scipy.special.gammaln(proposal + 1.0)
    accepted = quick | (~excluded & (log_ratio <= log_target))
    first = jnp.argmax(accepted, axis=0)
    chosen = jnp.take_along_axis(proposal, first[None], axis=0)[0]
    normal = jax.scipy.special.ndtri(jnp.clip(v[0], 1e-6, 1.0 - 1e-6))
    fallback = jnp.maximum(jnp.round(high + root * normal), 0.0)
    large = jnp.where(jnp.any(accepted, axis=0), chosen, fallback)
    return jnp.where(lam < _SMALL_MEAN, small, large).reshape(mean.shape)


def _patches(image: Array, centres: np.ndarray, p: int) -> Array:
    """(N, p, p) windows ``image[r − p//2 : r − p//2 + p, c − p//2 : …]`` at the centres."""
    offsets = np.arange(p) - p // 2
    rows = centres[:, 0, None] + offsets  # (N, p)
    cols = centres[:, 1, None] + offsets
    return image[rows[:, :, None], cols[:, None, :]]


def _draws(key, config, n_layout: int):
    """The key for the shot noise and one 1-D uniform draw for everything else.

    (One threefry call per world: every separate draw adds compile time on CPU.)
    Returns (key, layout uniforms (n_layout,), seed uniforms (N,), target normals (N,)).
    """
    n = len(candidate_centres(config.image_shape, config.patch_size))
    k_image, k_rest = jax.random.split(key)
    u = jax.random.uniform(k_rest, (n_layout + 2 * n,), jnp.result_type(float))
    tiny = jnp.finfo(u.dtype).eps
    normals = jax.scipy.special.ndtri(jnp.clip(u[n_layout + n :], tiny, 1.0 - tiny))
    return k_image, u[:n_layout], u[n_layout : n_layout + n], normals


def _image_and_world(
    k_image, seed_uniforms, target_normals, config, specimen: Specimen, scalarizer: Array,
    name: str,
) -> World:
    """Render ``specimen`` with Poisson noise, cut patches and assemble the world.

    ``scalarizer`` is the (H, W) scalarizer in [0, 1]; targets are its values at the
    candidates plus target_noise × ``target_normals``, clipped to [0, 1]; the seeds are
    the indices of the ``n_seeds`` largest ``seed_uniforms`` (a uniform random subset).
    """
    h, w = config.image_shape
    step = config.pixel_size_A
    imaging = IncoherentImaging(
        Probe(config.energy_kev, config.semiangle_mrad), margin=_MARGIN_A
    )
    grid = ScanGrid((h, w), step, (_MARGIN_A, _MARGIN_A))
    fraction = imaging.render(specimen, grid)
    electrons = config.dose_e_per_A2 * step**2
    counts = _shot_noise(k_image, jnp.maximum(fraction, 0.0) * electrons)
    image = _normalise(counts)

    centres = candidate_centres((h, w), config.patch_size)
    n = len(centres)
    values = scalarizer[centres[:, 0], centres[:, 1]]
    values = values + config.target_noise * target_normals.astype(values.dtype)
    seeds = jax.lax.top_k(seed_uniforms, config.n_seeds)[1]
    dtype = image.dtype
    return World(
        inputs=_patches(image, centres, config.patch_size),
        targets=jnp.clip(values, 0.0, 1.0).astype(dtype),
        positions=jnp.asarray(centres, dtype),
        costs=jnp.ones(n, dtype),
        seeds=seeds.astype(jnp.int32),
        image=image,
        name=name,
    )


# --------------------------------------------------------------------------------------------
# domain world


class DomainWorldConfig(eqx.Module):
    """Static settings of :func:`domain_world` (every field is static; defaults: PFM geometry).

    Attributes:
        image_shape: (H, W) image size, pixels.
        patch_size: side of the square patch around each candidate, pixels.
        n_seeds: number of seed measurements drawn from the key.
        pixel_size_A: scan step, Å (default 2 Å: a 100 Å field of view).
        material: host perovskite, one of ``PEROVSKITES`` ("SrTiO3", "BaTiO3").
        domain_a_element: element on the A sites inside the domains (default "Ba": Z contrast
            against the Sr host); the host's own A element gives no composition contrast.
        domain_rotation_deg: in-plane rotation of the domain lattice, degrees (orientation
            contrast; visible only with a probe that resolves the lattice).
        thickness_A: film thickness, Å.
        n_domains: (low, high) number of disc domains, drawn uniformly (≥ 1 each).
        domain_radius_A: (low, high) range of the domain radii, Å (uniform per domain).
        energy_kev: beam energy, keV.
        semiangle_mrad: probe convergence semi-angle, mrad (3 mrad: band limit 0.24 Å⁻¹ at
            200 keV, below the 0.256 Å⁻¹ lattice frequency of SrTiO3, so the image shows
            composition contrast only).
        dose_e_per_A2: electron dose, e⁻/Å² (Poisson noise).
        wall_width_px: width w of the wall scalarizer exp(−d²/(2w²)), pixels.
        target_noise: standard deviation of Gaussian noise added to the raw scalarizer
            (whose peak is 1) before clipping to [0, 1].
    """

    image_shape: tuple[int, int] = eqx.field(static=True, default=(50, 50))
    patch_size: int = eqx.field(static=True, default=16)
    n_seeds: int = eqx.field(static=True, default=10)
    pixel_size_A: float = eqx.field(static=True, default=2.0)
    material: str = eqx.field(static=True, default="SrTiO3")
    domain_a_element: str = eqx.field(static=True, default="Ba")
    domain_rotation_deg: float = eqx.field(static=True, default=0.0)
    thickness_A: float = eqx.field(static=True, default=20.0)
    n_domains: tuple[int, int] = eqx.field(static=True, default=(2, 6))
    domain_radius_A: tuple[float, float] = eqx.field(static=True, default=(15.0, 35.0))
    energy_kev: float = eqx.field(static=True, default=200.0)
    semiangle_mrad: float = eqx.field(static=True, default=3.0)
    dose_e_per_A2: float = eqx.field(static=True, default=5e4)
    wall_width_px: float = eqx.field(static=True, default=2.0)
    target_noise: float = eqx.field(static=True, default=0.02)

    def __check_init__(self):
        _check_shape_and_patch(self.image_shape, self.patch_size, self.n_seeds)
        check_positive("pixel_size_A", self.pixel_size_A, "Å")
        if self.material not in PEROVSKITES:
            raise ValueError(f"material must be one of {sorted(PEROVSKITES)}; got "
                             f"{self.material!r}")
        atomic_number(self.domain_a_element, "domain_a_element")
        if not math.isfinite(self.domain_rotation_deg):
            raise ValueError(f"domain_rotation_deg must be finite; got "
                             f"{self.domain_rotation_deg!r}")
        check_positive("thickness_A", self.thickness_A, "Å")
        n = self.n_domains
        if (not isinstance(n, tuple) or len(n) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in n)
                or not 1 <= n[0] <= n[1]):
            raise ValueError(f"n_domains must be a tuple (low, high) of ints with 1 <= low <= "
                             f"high; got {n!r}")
        _check_range("domain_radius_A", self.domain_radius_A, 0.0, " Å")
        check_positive("domain_radius_A[1]", self.domain_radius_A[1], "Å")
        check_positive("energy_kev", self.energy_kev, "keV")
        check_positive("semiangle_mrad", self.semiangle_mrad, "mrad")
        check_positive("dose_e_per_A2", self.dose_e_per_A2, "e⁻/Å²")
        check_positive("wall_width_px", self.wall_width_px, "px")
        check_nonnegative("target_noise", self.target_noise)


class DomainTruth(NamedTuple):
    """The hidden layout behind ``domain_world(key, config)``.

    Attributes:
        discs: (m, 3) domain discs (x, y, radius) in Å of the specimen frame (the scan's
            pixel [0, 0] sits at (10, 10) Å); unused slots have radius 0. m = n_domains[1].
        phase_map: (H, W) int, 1 inside a domain, 0 in the host.
        wall_distance_px: (H, W) distance from each pixel to the nearest domain wall, pixels
            (nearest pixel of the other phase, minus half a pixel; H + W when the field holds
            one phase only).
        scalarizer: (H, W) noise-free scalarizer exp(−d²/(2w²)), in [0, 1].
    """

    discs: Float[Array, "m 3"]
    phase_map: Int[Array, "H W"]
    wall_distance_px: Float[Array, "H W"]
    scalarizer: Float[Array, "H W"]


def domain_world(key: PRNGKeyArray, config: DomainWorldConfig = DomainWorldConfig()) -> World:
    """A ferroelectric-like domain image whose scalarizer peaks on the domain walls.

    A ``config.material`` film (``thickness_A`` thick) covers the field of view; inside
    ``n_domains`` discs (uniform count, uniform centres over the field, uniform radii) the
    A sites carry ``domain_a_element`` (and the lattice may be rotated). The film is imaged
    by :class:`~stemjax.physics.IncoherentImaging` (HAADF 68–200 mrad) on a
    ``pixel_size_A`` raster at ``dose_e_per_A2`` with Poisson noise, so domains show as
    brighter (Ba) or darker regions and patches that straddle a wall hold an intensity step.
    The scalarizer at a candidate is exp(−d²/(2w²)), d its distance in pixels to the nearest
    wall of the ground-truth phase map, plus N(0, ``target_noise``²), clipped to [0, 1].
    Costs are 1 s each.

    Args:
        key: PRNG key (split inside into layout, image noise, target noise and seeds).
        config: static settings.

    Returns:
        World "domains": inputs (N, p, p) in [0, 1], targets (N,), positions (N, 2) px,
        image (H, W); N = (H − p + 1)(W − p + 1).
    """
    _check_key(key)
    return _domain_sample(key, config)[0]


def domain_ground_truth(
    key: PRNGKeyArray, config: DomainWorldConfig = DomainWorldConfig()
) -> DomainTruth:
    """The discs, phase map, wall distances and scalarizer behind ``domain_world(key, config)``."""
    _check_key(key)
    return _domain_sample(key, config)[1]


@eqx.filter_jit
def _domain_sample(key, config: DomainWorldConfig) -> tuple[World, DomainTruth]:
    k_image, u, seed_u, normals = _draws(key, config, 1 + 3 * config.n_domains[1])
    specimen, truth = _domain_layout(u, config)
    world = _image_and_world(k_image, seed_u, normals, config, specimen, truth.scalarizer,
                             "domains")
    return world, truth


def _domain_layout(u, config: DomainWorldConfig) -> tuple[Specimen, DomainTruth]:
    """Specimen and ground truth from (1 + 3 · n_domains[1],) uniforms ``u``."""
    h, w = config.image_shape
    step = config.pixel_size_A
    a = PEROVSKITES[config.material][2]
    cells = (math.ceil((w * step + 2 * _MARGIN_A) / a), math.ceil((h * step + 2 * _MARGIN_A) / a))
    host = perovskite(config.material, cells, config.thickness_A)
    is_a_site = np.tile(np.arange(5) == 0, cells[0] * cells[1])  # motif: A, B, O(apical), O, O
    second = eqx.tree_at(
        lambda s: s.atomic_numbers, host,
        jnp.where(is_a_site, atomic_number(config.domain_a_element), host.atomic_numbers)
        .astype(host.atomic_numbers.dtype),
    )
    if config.domain_rotation_deg != 0.0:
        second = rotated(second, config.domain_rotation_deg)

    # discs: uniform count, centres uniform over the scanned field, uniform radii
    low, high = config.n_domains
    dtype = host.positions.dtype
    u = u.astype(dtype)
    count = low + jnp.minimum(jnp.floor(u[0] * (high - low + 1)), high - low)
    field = jnp.array([w * step, h * step], dtype)
    centres = _MARGIN_A + u[1 : 1 + 2 * high].reshape(high, 2) * field
    r_low, r_high = config.domain_radius_A
    radii = r_low + u[1 + 2 * high :] * (r_high - r_low)
    used = jnp.arange(high) < count
    discs = jnp.where(used[:, None], jnp.concatenate([centres, radii[:, None]], 1), 0.0)

    # the same composition rule as physics.add_phase_domains, with our own discs
    outer = eqx.tree_at(
        lambda s: (s.present, s.phases), host,
        (host.present & ~inside_domains(host.atom_xy, discs), jnp.zeros_like(host.phases)),
    )
    inner = eqx.tree_at(
        lambda s: (s.present, s.phases), second,
        (second.present & inside_domains(second.atom_xy, discs), jnp.ones_like(second.phases)),
    )
    specimen = eqx.tree_at(lambda s: s.domains, concatenate(outer, inner), discs)

    grid = ScanGrid((h, w), step, (_MARGIN_A, _MARGIN_A))
    phase = specimen.phase_map(grid)
    distance = _wall_distance(phase)
    scalarizer = jnp.exp(-0.5 * (distance / config.wall_width_px) ** 2)
    return specimen, DomainTruth(discs, phase, distance, scalarizer.astype(dtype))


def _wall_distance(phase: Array) -> Array:
    """(H, W) distance (px) from each pixel to the nearest pixel of the other phase, − ½."""
    h, w = phase.shape
    rr, cc = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    coords = jnp.stack([rr.ravel(), cc.ravel()], 1).astype(jnp.result_type(float))
    flat = phase.ravel()
    far = float(h + w)

    def one_row(i):  # the W pixels of row i against every pixel
        mine = jax.lax.dynamic_slice_in_dim(coords, i * w, w)
        mine_phase = jax.lax.dynamic_slice_in_dim(flat, i * w, w)
        d2 = jnp.sum((mine[:, None, :] - coords[None, :, :]) ** 2, axis=-1)
        d2 = jnp.where(mine_phase[:, None] != flat[None, :], d2, far**2 + 1.0)
        return jnp.minimum(jnp.sqrt(jnp.min(d2, axis=1)) - 0.5, far)

    return jax.lax.map(one_row, jnp.arange(h))


# --------------------------------------------------------------------------------------------
# particle world


class ParticleWorldConfig(eqx.Module):
    """Static settings of :func:`particle_world` (every field is static; defaults: PFM geometry).

    Attributes:
        image_shape: (H, W) image size, pixels.
        patch_size: side of the square patch around each candidate, pixels.
        n_seeds: number of seed measurements drawn from the key.
        pixel_size_A: scan step, Å (default 10 Å: a 50 nm field of view).
        element: particle metal, one of ``FCC_LATTICE_PARAMETERS`` (Au, Pt, Pd, Ag).
        grid: (rows, cols) of the jittered grid of particles over the field.
        jitter: particle centre offset as a fraction of the grid spacing, uniform in
            [−jitter, jitter] per axis, in [0, 0.45].
        radius_A: (low, high) range of particle radii, Å; radii are then shrunk, where needed,
            so that every gap is at least ``min_gap_A``.
        min_gap_A: smallest surface-to-surface gap between particles, Å.
        column_spacing_A: spacing of the coarse-grained atomic columns, Å; must exceed the
            probe's resolution λ/(2α) so the grid does not show (5 Å vs 8.4 Å by default).
        energy_kev, semiangle_mrad: the probe (1.5 mrad: resolution ≈ one 10 Å pixel).
        dose_e_per_A2: electron dose, e⁻/Å² (Poisson noise).
        gap_decay_A: the scalarizer is exp(−g / gap_decay_A) for a local gap g, Å: the decay
            length of the gap coupling, comparable to the particle radius (the exponential
            form of the "plasmon ruler", whose decay constant is about 0.2 × the particle
            diameter for the resonance shift; Jain, Huang & El-Sayed, Nano Lett. 7, 2080
            (2007)).
        edge_width_A: Gaussian length over which the scalarizer fades inside a particle, Å.
        target_noise: standard deviation of Gaussian noise added to the raw scalarizer.
    """

    image_shape: tuple[int, int] = eqx.field(static=True, default=(50, 50))
    patch_size: int = eqx.field(static=True, default=16)
    n_seeds: int = eqx.field(static=True, default=10)
    pixel_size_A: float = eqx.field(static=True, default=10.0)
    element: str = eqx.field(static=True, default="Au")
    grid: tuple[int, int] = eqx.field(static=True, default=(4, 4))
    jitter: float = eqx.field(static=True, default=0.3)
    radius_A: tuple[float, float] = eqx.field(static=True, default=(25.0, 55.0))
    min_gap_A: float = eqx.field(static=True, default=5.0)
    column_spacing_A: float = eqx.field(static=True, default=5.0)
    energy_kev: float = eqx.field(static=True, default=200.0)
    semiangle_mrad: float = eqx.field(static=True, default=1.5)
    dose_e_per_A2: float = eqx.field(static=True, default=1e4)
    gap_decay_A: float = eqx.field(static=True, default=40.0)
    edge_width_A: float = eqx.field(static=True, default=10.0)
    target_noise: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        _check_shape_and_patch(self.image_shape, self.patch_size, self.n_seeds)
        check_positive("pixel_size_A", self.pixel_size_A, "Å")
        if self.element not in FCC_LATTICE_PARAMETERS:
            raise ValueError(f"element must be one of {sorted(FCC_LATTICE_PARAMETERS)}; got "
                             f"{self.element!r}")
        g = self.grid
        if (not isinstance(g, tuple) or len(g) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in g)
                or g[0] * g[1] < 2):
            raise ValueError(f"grid must be a tuple (rows, cols) of ints >= 1 holding at least "
                             f"2 particles; got {g!r}")
        if not (isinstance(self.jitter, (int, float)) and 0.0 <= self.jitter <= 0.45):
            raise ValueError(f"jitter must lie in [0, 0.45] (fraction of the grid spacing); "
                             f"got {self.jitter!r}")
        _check_range("radius_A", self.radius_A, 0.0, " Å")
        check_positive("radius_A[1]", self.radius_A[1], "Å")
        check_positive("min_gap_A", self.min_gap_A, "Å")
        h, w = self.image_shape
        spacing = min(h * self.pixel_size_A / g[0], w * self.pixel_size_A / g[1])
        closest = (1.0 - 2.0 * self.jitter) * spacing
        if self.min_gap_A >= closest:
            raise ValueError(
                f"min_gap_A must be smaller than the closest possible centre distance "
                f"(1 − 2·jitter) × grid spacing = {closest:.3g} Å; got {self.min_gap_A!r}"
            )
        check_positive("column_spacing_A", self.column_spacing_A, "Å")
        check_positive("energy_kev", self.energy_kev, "keV")
        check_positive("semiangle_mrad", self.semiangle_mrad, "mrad")
        check_positive("dose_e_per_A2", self.dose_e_per_A2, "e⁻/Å²")
        check_positive("gap_decay_A", self.gap_decay_A, "Å")
        check_positive("edge_width_A", self.edge_width_A, "Å")
        check_nonnegative("target_noise", self.target_noise)


class ParticleTruth(NamedTuple):
    """The hidden layout behind ``particle_world(key, config)``.

    Attributes:
        centres: (n, 2) particle centres (row, col) in image pixels (may lie off the image).
        radii: (n,) particle radii, pixels.
        gaps: (n, n) surface-to-surface gaps, pixels (+inf on the diagonal).
        scalarizer: (H, W) noise-free scalarizer, in [0, 1].
    """

    centres: Float[Array, "n 2"]
    radii: Float[Array, " n"]
    gaps: Float[Array, "n n"]
    scalarizer: Float[Array, "H W"]


def particle_world(key: PRNGKeyArray, config: ParticleWorldConfig = ParticleWorldConfig()) -> World:
    """Metal nanoparticles whose plasmon-like scalarizer is strongest in the narrowest gaps.

    Particles (``grid`` rows × cols, centres jittered about the grid nodes, radii uniform in
    ``radius_A`` then shrunk so every gap is ≥ ``min_gap_A``) are fcc spheres of ``element``,
    coarse-grained into columns on a ``column_spacing_A`` square grid, each holding the atoms
    of its area (4/a³ × chord length × spacing²). They are imaged by
    :class:`~stemjax.physics.IncoherentImaging` at ``pixel_size_A`` with Poisson noise.

    The scalarizer is a phenomenological gap-mode field. At a point p with distances s₁ ≤ s₂
    to the two nearest particle surfaces (of radii r₁, r₂), the local gap is
    g = max(s₁, 0) + max(s₂, 0) and the field exp(−g / gap_decay_A) (the exponential
    "plasmon ruler" decay of a dimer's coupling with its gap), faded inside a particle by
    exp(−s₁² / (2 edge_width_A²)) for s₁ < 0. Since s₁ + s₂ is at least the gap between
    those two particles, the field is largest along the narrowest gap of the assembly, fills
    every gap, is weaker at isolated edges and smallest far from all particles. It equals 1
    only in a gap of zero width. N(0, ``target_noise``²) is added and targets are clipped to
    [0, 1].

    Args:
        key: PRNG key (split inside into layout, image noise, target noise and seeds).
        config: static settings.

    Returns:
        World "particles": inputs (N, p, p) in [0, 1], targets (N,), positions (N, 2) px,
        image (H, W).
    """
    _check_key(key)
    return _particle_sample(key, config)[0]


def particle_ground_truth(
    key: PRNGKeyArray, config: ParticleWorldConfig = ParticleWorldConfig()
) -> ParticleTruth:
    """The particle centres, radii, gaps and scalarizer behind ``particle_world(key, config)``."""
    _check_key(key)
    return _particle_sample(key, config)[1]


@eqx.filter_jit
def _particle_sample(key, config: ParticleWorldConfig) -> tuple[World, ParticleTruth]:
    k_image, u, seed_u, normals = _draws(key, config, 3 * config.grid[0] * config.grid[1])
    specimen, truth = _particle_layout(u, config)
    world = _image_and_world(k_image, seed_u, normals, config, specimen, truth.scalarizer,
                             "particles")
    return world, truth


def _particle_layout(u, config: ParticleWorldConfig) -> tuple[Specimen, ParticleTruth]:
    """Specimen and ground truth from (3 · rows · cols,) uniforms ``u``."""
    h, w = config.image_shape
    step = config.pixel_size_A
    dtype = jnp.result_type(float)
    gy, gx = config.grid
    n = gx * gy

    # centres (x, y) in Å of the specimen frame on a jittered grid; radii shrunk to keep gaps
    u = u.astype(dtype)
    spacing = jnp.array([w * step / gx, h * step / gy], dtype)
    iy, ix = np.meshgrid(np.arange(gy), np.arange(gx), indexing="ij")
    nodes = np.stack([ix.ravel(), iy.ravel()], 1) + 0.5
    offsets = config.jitter * (2.0 * u[: 2 * n].reshape(n, 2) - 1.0)
    centres = _MARGIN_A + (nodes + offsets) * spacing
    r_low, r_high = config.radius_A
    drawn = r_low + u[2 * n :] * (r_high - r_low)
    distance = jnp.sqrt(jnp.sum((centres[:, None] - centres[None]) ** 2, -1))
    distance = jnp.where(np.eye(n, dtype=bool), jnp.inf, distance)
    radii = jnp.minimum(drawn, 0.5 * (jnp.min(distance, axis=1) - config.min_gap_A))
    gaps = distance - radii[:, None] - radii[None, :]

    # coarse-grained fcc spheres: one column per spacing² of projected area
    a = FCC_LATTICE_PARAMETERS[config.element]
    s = config.column_spacing_A
    k = math.ceil(r_high / s)
    ox, oy = np.meshgrid(np.arange(-k, k + 1) * s, np.arange(-k, k + 1) * s, indexing="ij")
    template = np.stack([ox.ravel(), oy.ravel()], 1)
    template = template[np.hypot(template[:, 0], template[:, 1]) <= r_high]  # (t, 2)
    rho2 = jnp.asarray(np.sum(template**2, 1), dtype)
    chord = 2.0 * jnp.sqrt(jnp.maximum(radii[:, None] ** 2 - rho2[None], 0.0))  # (n, t)
    atoms = (4.0 / a**3) * chord * s**2
    xy = (centres[:, None, :] + jnp.asarray(template, dtype)[None]).reshape(-1, 2)
    z = (r_high - 0.5 * chord).reshape(-1, 1)
    cell = (w * step + 2 * _MARGIN_A, h * step + 2 * _MARGIN_A, 2 * r_high)
    specimen = make_specimen(
        jnp.concatenate([xy, z], 1), atomic_number(config.element), cell,
        counts=atoms.ravel(), debye_waller=0.5, phases=1, present=atoms.ravel() > 0,
        domains=jnp.concatenate([centres, radii[:, None]], 1),
    )

    # plasmon-like scalarizer on every pixel: the local gap between the two nearest surfaces
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    p = _MARGIN_A + jnp.asarray(np.stack([cc, rr], -1), dtype) * step  # (H, W, 2) as (x, y)
    to_surface = jnp.sqrt(jnp.sum((p[:, :, None, :] - centres) ** 2, -1)) - radii  # (H, W, n)
    negative, _ = jax.lax.top_k(-to_surface, 2)
    s1, s2 = -negative[..., 0], -negative[..., 1]
    local_gap = jnp.maximum(s1, 0.0) + jnp.maximum(s2, 0.0)
    inside = jnp.exp(-0.5 * (jnp.minimum(s1, 0.0) / config.edge_width_A) ** 2)
    scalarizer = jnp.exp(-local_gap / config.gap_decay_A) * inside

    centres_px = (centres[:, ::-1] - _MARGIN_A) / step  # (row, col)
    truth = ParticleTruth(centres_px, radii / step, gaps / step, scalarizer.astype(dtype))
    return specimen, truth
