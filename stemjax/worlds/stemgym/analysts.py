"""STEMGym analysts: what an agent makes of the frames it has recorded.

The analyst interface
---------------------

An **analyst** is a pure, jit-able function ::

    analyse(state: EnvState, world: World) -> Report

that reads only what an agent may know:

- from the state: the summed frames ``state.frames`` (T, p, p) in detected electrons, the
  dose of each tile ``state.tile_dose`` (T,) in e⁻/Å², and so which tiles were observed
  (``state.observed`` = dose > 0);
- from the world: its public settings: the tile layout (``tiles``, ``tile_px``,
  ``tile_origins()``, ``field_lower_A``), the probe step ``pixel_A`` (Å), the number of
  particle slots ``n_discs``, the imaging model, and the material (``world.material``, which
  fixes the search target: substitutions in SrTiO3, SiGe and Nanoparticles, vacancies in
  BaTiO3 and GaN).

It never reads ``world.truth`` or ``world.specimen``, nor the damage state in ``state``
(counts, occupancies, atom types, site doses). It vmaps over episodes with the world shared:
``jax.vmap(analyse, in_axes=(0, None))(states, world)``. Only observed tiles are analysed
(``report.analysed = state.observed``); unobserved tiles report nothing.

Both analysts here also work tile by tile (the ``TileAnalyst`` protocol of
:mod:`stemjax.worlds.stemgym.agents`): ``tile_features(frames (k, p, p), tile_dose (k,),
tiles (k,), world)`` analyses k tiles on their own, ``assemble(features (T, ...), state,
world)`` makes the report (field-level steps: the phase threshold of the peak finder and the
particles), and ``analyse = assemble ∘ tile_features`` over all tiles. An episode can then
re-analyse only the tile imaged at each step. For the Gymnasium wrapper, whose analyst is
``f(frames, tile_dose, world)``, pass ``analyst.from_frames``.

- :data:`peak_analyst` (:class:`PeakAnalyst`; "none" in the paper's terms: no learned model):
  local maxima of the smoothed detected fraction are columns; a dark gap where rows of
  columns should continue is a vacancy; a column whose brightness is a robust outlier from
  the tile's typical columns is a substitution; phase 1 where the
  smoothed brightness passes the midpoint between the field's dark and bright levels (only
  when the field has two clearly different levels: particles on a support, not rotated
  grains); particles are the phase-1 blobs.
- :func:`cnn_analyst` and :func:`load_unet_analyst` (:class:`UNetAnalyst`): a deep ensemble
  of small U-Nets (:mod:`stemjax.worlds.stemgym.unet`) segments every tile into background,
  column, vacancy and substitution and predicts phase 1; defects are the local maxima of the
  ensemble-mean vacancy and substitution probabilities above thresholds fitted on held-out
  tiles; phase 1 where its mean probability exceeds ½; particles are the phase-1 blobs.
  ``UNetAnalyst.uncertainty`` gives each tile's mean predictive entropy.

Lengths in Å, dose in e⁻/Å², frames in detected electrons.
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
from jaxtyping import Array, Bool, Float, Int

from stemjax._validation import is_concrete
from stemjax.physics.specimen import VACANCY
from stemjax.worlds.stemgym import unet as _unet
from stemjax.worlds.stemgym.env import EnvState
from stemjax.worlds.stemgym.tasks import Report
from stemjax.worlds.stemgym.worlds import MATERIALS, SEARCH_TARGETS, World, check_world

__all__ = [
    "DATA_DIR",
    "PeakAnalyst",
    "PeakFeatures",
    "UNetAnalyst",
    "UNetFeatures",
    "blob_particles",
    "cnn_analyst",
    "count_peaks",
    "load_unet_analyst",
    "local_maxima",
    "peak_analyst",
    "target_type",
]

DATA_DIR = Path(__file__).parent / "data"
"""Folder of the shipped U-Net weights (``unet_analyst.eqx``) and their record (``.json``)."""

_TARGET_TYPES = np.array([SEARCH_TARGETS[m] for m in MATERIALS], np.int32)


def target_type(world: World) -> Int[Array, ""]:
    """() int32 defect type of the search task (1 vacancy, 2 substitution), from the material:
    public knowledge of the task, read without the ground truth."""
    return jnp.asarray(_TARGET_TYPES)[world.material]


# --------------------------------------------------------------------------------------------
# validation


def _check(state, world) -> None:
    check_world(world)
    if not isinstance(state, EnvState):
        raise ValueError(f"state must be a stemjax.worlds.stemgym.EnvState (from reset or step); "
                         f"got {type(state).__name__}")  # fmt: skip
    _check_frames(state.frames, state.tile_dose, world)


def _check_frames(frames, tile_dose, world) -> None:
    check_world(world)
    t, (p, _) = world.n_tiles, world.tile_shape
    if jnp.shape(frames) != (t, p, p):
        raise ValueError(f"frames must have shape ({t}, {p}, {p}) (T tiles of p × p detected "
                         f"electrons) for this world; got {jnp.shape(frames)}")  # fmt: skip
    if jnp.shape(tile_dose) != (t,):
        raise ValueError(f"tile_dose must have shape ({t},) (e⁻/Å² per tile) for this world; "
                         f"got {jnp.shape(tile_dose)}")  # fmt: skip
    if is_concrete(tile_dose):
        dose = np.asarray(tile_dose, float)
        if not np.all(np.isfinite(dose)) or np.any(dose < 0):
            bad = dose[~(np.isfinite(dose) & (dose >= 0))].ravel()[0]
            raise ValueError(f"tile_dose must be finite and >= 0 e⁻/Å²; got {bad!r}")
    if is_concrete(frames) and not np.all(np.isfinite(np.asarray(frames, float))):
        raise ValueError("frames must be finite (no NaN or infinity)")


# --------------------------------------------------------------------------------------------
# image helpers (all vectorised over leading axes)


def _gaussian_matrix(p: int, sigma_px: float) -> np.ndarray:
    """(p, p) row-normalised Gaussian weights: ``G @ image @ G.T`` smooths a (p, p) image
    (edges renormalised, so a flat image stays flat)."""
    i = np.arange(p)
    g = np.exp(-0.5 * ((i[:, None] - i[None, :]) / max(sigma_px, 1e-6)) ** 2)
    return g / g.sum(axis=1, keepdims=True)


def _smooth(image: Float[Array, "... p p"], sigma_px: float) -> Float[Array, "... p p"]:
    if sigma_px <= 0:
        return image
    g = jnp.asarray(_gaussian_matrix(image.shape[-1], sigma_px), image.dtype)
    return jnp.einsum("ij,...jk,lk->...il", g, image, g)


def _max_filter(image: Float[Array, "... h w"], radius: int) -> Float[Array, "... h w"]:
    """Maximum over the (2r + 1)² window of every pixel (outside counts as −∞)."""
    h, w = image.shape[-2:]
    pad = [(0, 0)] * (image.ndim - 2)
    rows = jnp.pad(image, pad + [(radius, radius), (0, 0)], constant_values=-jnp.inf)
    out = functools.reduce(jnp.maximum, [rows[..., i : i + h, :] for i in range(2 * radius + 1)])
    cols = jnp.pad(out, pad + [(0, 0), (radius, radius)], constant_values=-jnp.inf)
    return functools.reduce(jnp.maximum, [cols[..., :, j : j + w] for j in range(2 * radius + 1)])


def _box_sum(image: Float[Array, "h w"], radius: int) -> Float[Array, "h w"]:
    """Sum over the (2r + 1)² window of every pixel (outside counts as 0)."""
    h, w = image.shape
    padded = jnp.pad(image, radius)
    n = 2 * radius + 1
    return sum(padded[i : i + h, j : j + w] for i in range(n) for j in range(n))


def local_maxima(image: Float[Array, "... h w"], radius_px: int = 2) -> Bool[Array, "... h w"]:
    """(..., h, w) True at the maxima of their (2r + 1)² window. Ties go to the pixel last
    in raster order, so a plateau smaller than the window gives one maximum.

    Args:
        image: (..., h, w) values.
        radius_px: r, the window's half-width in pixels (static).
    """
    h, w = image.shape[-2:]
    r = int(radius_px)
    pad = [(0, 0)] * (image.ndim - 2) + [(r, r), (r, r)]
    padded = jnp.pad(image, pad, constant_values=-jnp.inf)
    keep = jnp.ones(image.shape, bool)
    for di in range(-r, r + 1):
        for dj in range(-r, r + 1):
            if di == 0 and dj == 0:
                continue
            neighbour = padded[..., r + di : r + di + h, r + dj : r + dj + w]
            later = (di, dj) > (0, 0)  # the neighbour comes after this pixel
            keep &= (image > neighbour) if later else (image >= neighbour)
    return keep


def count_peaks(
    prob: Float[Array, "... p p"], threshold, radius_px: int = 2, sigma_px: float = 0.7
) -> Float[Array, "..."]:
    """Number of local maxima (window of half-width ``radius_px``) of the lightly smoothed
    map ``prob`` (Gaussian σ = ``sigma_px`` px) whose value exceeds ``threshold``.

    Args:
        prob: (..., p, p) maps, e.g. a class probability per pixel.
        threshold: () or broadcastable to (...): least peak value counted.
        radius_px: half-width of the maximum window, px (static).
        sigma_px: smoothing before the search, px (static; 0 for none).

    Returns:
        (...) counts (float).
    """
    smooth = _smooth(prob, sigma_px)
    peaks = local_maxima(smooth, radius_px) & (smooth > jnp.asarray(threshold)[..., None, None])
    return jnp.sum(peaks, axis=(-2, -1)).astype(prob.dtype)


def _field(world: World, tiles: Array) -> Array:
    """(T, p, p) tiles → (H, W) field, row-major tile order."""
    n, p = world.tiles, world.tile_px
    return tiles.reshape(n, n, p, p).transpose(0, 2, 1, 3).reshape(n * p, n * p)


def _components(mask: Bool[Array, "h w"]) -> Int[Array, "h w"]:
    """Label of the 8-connected component of every True pixel (the largest flat index + 1
    in it), 0 elsewhere: max-label propagation with pointer jumping until nothing changes."""
    h, w = mask.shape
    index = jnp.arange(1, h * w + 1, dtype=jnp.int32).reshape(h, w)
    labels = jnp.where(mask, index, 0)

    def cond(carry):
        return carry[1]

    def body(carry):
        labels, _ = carry
        new = jnp.where(mask, _max_filter(labels.astype(jnp.float32), 1).astype(jnp.int32), 0)
        flat = new.reshape(-1)
        jumped = jnp.where(mask, flat[jnp.maximum(new - 1, 0)], 0)
        new = jnp.maximum(new, jumped)
        return new, jnp.any(new != labels)

    labels, _ = jax.lax.while_loop(cond, body, (labels, jnp.asarray(True)))
    return labels


def blob_particles(
    phase_tiles: Bool[Array, "T p p"],
    observed: Bool[Array, " T"],
    world: World,
    min_area_A2: float = 6.0,
) -> tuple[Float[Array, "P 3"], Bool[Array, " P"]]:
    """Particles (x, y, radius) from the phase-1 blobs of the observed tiles.

    The tiles are put together into the field (unobserved tiles are phase 0); each
    8-connected phase-1 blob of area A ≥ ``min_area_A2`` is a particle at its centroid with
    radius √(A/π); the P = ``world.n_discs`` largest are reported.

    Args:
        phase_tiles: (T, p, p) phase-1 masks of the tiles.
        observed: (T,) tiles seen.
        world: the world (its tile layout, probe step and particle slots; not its truth).
        min_area_A2: least blob area reported, Å².

    Returns:
        ``(particles, mask)``: (P, 3) x, y, radius in Å (field coordinates), (P,) bool.
    """
    mask = _field(world, phase_tiles & observed[:, None, None])
    h, w = mask.shape
    labels = _components(mask).reshape(-1)
    step = world.pixel_A
    lower = world.field_lower_A
    rows, cols = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    dtype = lower.dtype
    x = (lower[0] + (cols.reshape(-1) + 0.5) * step).astype(dtype)
    y = (lower[1] + (rows.reshape(-1) + 0.5) * step).astype(dtype)
    ones = jnp.ones(h * w, dtype)
    segments = h * w + 1
    area = jax.ops.segment_sum(ones, labels, segments).at[0].set(0.0)
    sx = jax.ops.segment_sum(x, labels, segments)
    sy = jax.ops.segment_sum(y, labels, segments)
    n_p = world.n_discs
    top, which = jax.lax.top_k(area, n_p)
    area_A2 = top * step**2
    keep = area_A2 >= min_area_A2
    safe = jnp.maximum(top, 1.0)
    particles = jnp.stack([sx[which] / safe, sy[which] / safe, jnp.sqrt(area_A2 / jnp.pi)], -1)
    return jnp.where(keep[:, None], particles, 0.0).astype(dtype), keep


def _counts_report(world, observed, counts, phase_tiles, particles, particles_mask) -> Report:
    dtype = world.field.origin.dtype
    counts = jnp.where(observed[:, None], counts, 0.0).astype(dtype)
    targets = jnp.where(target_type(world) == VACANCY, counts[:, 0], counts[:, 1])
    return Report(
        analysed=observed,
        defect_counts=counts,
        phase_map=jnp.where(observed[:, None, None], phase_tiles, 0).astype(jnp.int32),
        targets_found=targets,
        particles=particles.astype(dtype),
        particles_mask=particles_mask,
    )


def _fraction(frames, tile_dose, pixel_A):
    """Detected fraction per pixel: frames / (dose · pixel²); zeros where dose is 0."""
    seen = tile_dose > 0
    return jnp.where(seen[..., None, None],
                     frames / (jnp.where(seen, tile_dose, 1.0) * pixel_A**2)[..., None, None],
                     0.0)  # fmt: skip


class _Analyst(eqx.Module):
    """Shared plumbing: ``__call__``, ``from_frames`` and validation."""

    def tile_features(self, frames, tile_dose, tiles, world):  # pragma: no cover - abstract
        raise NotImplementedError

    def _assemble(self, features, observed, world) -> Report:  # pragma: no cover - abstract
        raise NotImplementedError

    def assemble(self, features, state: EnvState, world: World) -> Report:
        """The report from the (T, ...) features of every tile (zeros for tiles not seen) and
        the tiles observed (``state.observed``; nothing else of the state is read)."""
        return self._assemble(features, state.observed, world)

    def __call__(self, state: EnvState, world: World) -> Report:
        """The report of ``state`` (see the module docstring for what is read).

        Raises:
            ValueError: when ``world`` is not a World, ``state`` not an EnvState, or their
                shapes do not match (the message names the argument and the shapes).
        """
        _check(state, world)
        return self.from_frames(state.frames, state.tile_dose, world)

    def from_frames(self, frames, tile_dose, world: World) -> Report:
        """The report of summed frames (T, p, p) (detected electrons) and tile doses (T,)
        (e⁻/Å²): the analyst as the Gymnasium wrapper calls it."""
        _check_frames(frames, tile_dose, world)
        frames = jnp.asarray(frames, world.field.origin.dtype)
        return _analyse(self, frames, jnp.asarray(tile_dose, frames.dtype), world)


@eqx.filter_jit
def _all_features(analyst: _Analyst, frames, tile_dose, world: World):
    tiles = jnp.arange(world.n_tiles, dtype=jnp.int32)
    return analyst.tile_features(frames, tile_dose, tiles, world)


@eqx.filter_jit
def _assemble_all(analyst: _Analyst, features, tile_dose, world: World) -> Report:
    return analyst._assemble(features, tile_dose > 0, world)


def _analyse(analyst: _Analyst, frames, tile_dose, world: World) -> Report:
    features = _all_features(analyst, frames, tile_dose, world)
    return _assemble_all(analyst, features, tile_dose, world)


# --------------------------------------------------------------------------------------------
# the peak finder


class PeakFeatures(eqx.Module):
    """Per-tile results of the peak finder (leading axis k tiles).

    Attributes:
        counts: (k, 2) vacancies and substitutions found.
        brightness: (k, p, p) detected fraction smoothed over ``phase_sigma_A``.
    """

    counts: Float[Array, "k 2"]
    brightness: Float[Array, "k p p"]


class PeakAnalyst(_Analyst):
    """The peak-finding baseline (no learned model). See the module docstring.

    Per tile, on the detected fraction f = frame / (dose · pixel²) smoothed by a Gaussian of
    σ = ``smooth_A``:

    1. background b = the 30th percentile, scale s = 99.5th percentile − b;
    2. columns: local maxima (window ±``window_A``) above b + ``column_level`` · s; the
       ``max_columns`` brightest are kept; the typical column height h̃ is their median and
       d the median nearest-neighbour distance;
    3. vacancies: where a row of columns should go on (x_j + (x_j − x_i) for columns i, j
       less than ``neighbour_reach`` · d apart) but the image is dark (below
       b + ``vacancy_level`` · (h̃ − b)) and holds no column within 0.6 d; such predictions
       from at least ``min_votes`` pairs, gathered within ±1 px, make one vacancy;
    4. substitutions: columns whose height is more than ``outlier_z`` robust standard
       deviations from the nearer of the tile's two column levels (1-D 2-means of the
       heights, e.g. Sr and Ti-O; scale 1.4826 × median absolute residual);
    (2–4 only on a lattice: at least 4 columns with h̃ − b > ``lattice_contrast`` · b, not
    the noise of an amorphous support);
    5. phase: the detected fraction smoothed over ``phase_sigma_A``; over the observed
       field, with dark level q10 and bright level q99 of that map, phase 1 where it
       exceeds their midpoint, when bright/dark ≥ ``phase_contrast`` (else all phase 0);
    6. particles: :func:`blob_particles` of the phase map.

    Attributes are the settings above (lengths in Å, levels as fractions).
    """

    smooth_A: float = eqx.field(static=True, default=0.2)
    window_A: float = eqx.field(static=True, default=0.6)
    column_level: float = eqx.field(static=True, default=0.25)
    max_columns: int = eqx.field(static=True, default=48)
    neighbour_reach: float = eqx.field(static=True, default=1.2)
    vacancy_level: float = eqx.field(static=True, default=0.3)
    min_votes: int = eqx.field(static=True, default=2)
    outlier_z: float = eqx.field(static=True, default=3.0)
    lattice_contrast: float = eqx.field(static=True, default=2.0)
    phase_sigma_A: float = eqx.field(static=True, default=2.0)
    phase_contrast: float = eqx.field(static=True, default=3.0)
    min_particle_area_A2: float = eqx.field(static=True, default=6.0)

    def tile_features(self, frames, tile_dose, tiles, world: World) -> PeakFeatures:
        """Column, vacancy and substitution counts and the brightness map of k tiles.

        Args:
            frames: (k, p, p) summed frames, detected electrons.
            tile_dose: (k,) dose of each tile, e⁻/Å² (0 = not seen: zero features).
            tiles: (k,) int32 tile indices (unused: tiles are analysed on their own).
            world: the world (probe step only).
        """
        del tiles
        px = world.pixel_A
        f = _fraction(frames, tile_dose, px)
        counts = jax.vmap(lambda img: self._tile(img, px))(f)
        seen = tile_dose > 0
        return PeakFeatures(
            counts=jnp.where(seen[:, None], counts, 0.0),
            brightness=_smooth(f, self.phase_sigma_A / px),
        )

    def _tile(self, f: Float[Array, "p p"], px: float) -> Float[Array, "2"]:
        p = f.shape[-1]
        dtype = f.dtype
        fs = _smooth(f, self.smooth_A / px)
        b = jnp.quantile(fs, 0.3)
        s = jnp.maximum(jnp.quantile(fs, 0.995) - b, 1e-12)
        radius = max(1, round(self.window_A / px))
        is_max = local_maxima(fs, radius) & (fs > b + self.column_level * s)
        k = min(self.max_columns, p * p)
        height, flat = jax.lax.top_k(jnp.where(is_max, fs, -jnp.inf).reshape(-1), k)
        valid = jnp.isfinite(height)
        rc = jnp.stack([flat // p, flat % p], -1).astype(dtype)  # (k, 2) row, column
        h = jnp.where(valid, height, jnp.nan)
        typical = jnp.nanmedian(h)
        n_valid = jnp.sum(valid)
        # a lattice of columns: typical columns stand well above the background
        lattice = (n_valid >= 4) & (typical - b > self.lattice_contrast * jnp.maximum(b, 0.0))
        # two column levels (e.g. Sr and Ti-O): 1-D 2-means on the heights
        lo, hi = jnp.nanquantile(h, 0.25), jnp.nanquantile(h, 0.75)
        for _ in range(5):
            upper = jnp.abs(h - hi) < jnp.abs(h - lo)
            lo = jnp.nanmean(jnp.where(upper, jnp.nan, h))
            hi = jnp.where(jnp.any(upper), jnp.nanmean(jnp.where(upper, h, jnp.nan)), lo)
            lo = jnp.where(jnp.isfinite(lo), lo, hi)
        residual = jnp.minimum(jnp.abs(h - lo), jnp.abs(h - hi))
        scale = 1.4826 * jnp.nanmedian(residual) + 0.03 * (typical - b) + 1e-12
        outlier = valid & (jnp.nan_to_num(residual, nan=0.0) > self.outlier_z * scale)
        substitutions = jnp.sum(outlier & lattice & (n_valid >= 6))

        # vacancies: dark gaps where a row of columns should continue (x_j + (x_j − x_i) for
        # neighbouring columns i, j), voted for from several directions
        d = jnp.sqrt(jnp.sum((rc[:, None] - rc[None]) ** 2, -1))
        pair_ok = valid[:, None] & valid[None] & ~jnp.eye(k, dtype=bool)
        nn = jnp.min(jnp.where(pair_ok, d, jnp.inf), axis=1)
        d_nn = jnp.nanmedian(jnp.where(valid & jnp.isfinite(nn), nn, jnp.nan))
        d_nn = jnp.where(jnp.isfinite(d_nn), d_nn, jnp.inf)
        neighbours = pair_ok & (d < self.neighbour_reach * d_nn)
        ahead = 2.0 * rc[None, :] - rc[:, None]  # (k, k, 2): row i → j continued
        inside = jnp.all((ahead >= -0.5) & (ahead < p - 0.5), axis=-1)
        cell = jnp.clip(jnp.round(ahead).astype(jnp.int32), 0, p - 1)
        value = fs[cell[..., 0], cell[..., 1]]
        dark = value < b + self.vacancy_level * (typical - b)
        to_column = jnp.sqrt(jnp.sum((ahead[:, :, None] - rc[None, None]) ** 2, -1))  # (k,k,k)
        empty = ~jnp.any(valid[None, None] & (to_column < 0.6 * d_nn), axis=-1)
        candidate = neighbours & inside & dark & empty & lattice
        votes = jnp.zeros((p, p), dtype).at[cell[..., 0], cell[..., 1]].add(
            candidate.astype(dtype))
        box = _box_sum(votes, 1)
        vacancies = jnp.sum(local_maxima(box, 2) & (box >= self.min_votes))
        return jnp.stack([vacancies, substitutions]).astype(dtype)

    def _assemble(self, features: PeakFeatures, observed, world: World) -> Report:
        bright = features.brightness
        values = jnp.where(observed[:, None, None], bright, jnp.nan)
        dark = jnp.nanquantile(values, 0.10)
        light = jnp.nanquantile(values, 0.99)
        two_levels = jnp.any(observed) & (light >= self.phase_contrast * jnp.maximum(dark, 1e-9))
        phase = two_levels & (bright > 0.5 * (dark + light))
        particles, mask = blob_particles(phase, observed, world, self.min_particle_area_A2)
        return _counts_report(world, observed, features.counts, phase, particles, mask)


peak_analyst = PeakAnalyst()
"""The peak-finding baseline with its default settings: ``peak_analyst(state, world)``."""


# --------------------------------------------------------------------------------------------
# the U-Net ensemble


class UNetFeatures(eqx.Module):
    """Per-tile results of the U-Net ensemble (leading axis k tiles).

    Attributes:
        counts: (k, 2) vacancies and substitutions found.
        phase: (k, p, p) bool, phase 1.
        entropy: (k,) mean predictive entropy of the column classes over the tile, nats.
        disagreement: (k,) mean mutual information between prediction and member, nats.
    """

    counts: Float[Array, "k 2"]
    phase: Bool[Array, "k p p"]
    entropy: Float[Array, " k"]
    disagreement: Float[Array, " k"]


class UNetAnalyst(_Analyst):
    """The CNN analyst: an ensemble of small U-Nets (see the module docstring).

    Attributes:
        ensemble: the stacked U-Nets (:mod:`stemjax.worlds.stemgym.unet`).
        thresholds: (2,) least peak probability of a vacancy and of a substitution.
        phase_threshold: least mean probability of phase 1.
        peak_radius_px: half-width of the peak window, px.
        min_particle_area_A2: least blob area reported as a particle, Å².
    """

    ensemble: _unet.UNet
    thresholds: Float[Array, "2"]
    phase_threshold: float = eqx.field(static=True, default=0.5)
    peak_radius_px: int = eqx.field(static=True, default=2)
    min_particle_area_A2: float = eqx.field(static=True, default=6.0)

    # Hash and compare by identity, so that ``jax.jit(analyst)`` works (a module holding
    # arrays cannot be hashed by value); the weights are then constants of the compiled code.
    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def maps(self, frames, tile_dose, world: World):
        """Ensemble maps of k tiles: ``(class_probs (k, p, p, 4), phase_prob (k, p, p),
        entropy (k, p, p), mutual_information (k, p, p))``, see
        :func:`stemjax.worlds.stemgym.unet.ensemble_predict`.

        Args:
            frames: (k, p, p) summed frames, detected electrons (p a multiple of 4).
            tile_dose: (k,) dose of each tile, e⁻/Å².
            world: the world (probe step and material only).
        """
        x = _unet.tile_inputs(frames, tile_dose, world.pixel_A, world.material)
        return _unet.ensemble_predict(self.ensemble, x)

    def tile_features(self, frames, tile_dose, tiles, world: World) -> UNetFeatures:
        """Defect counts, phase and uncertainty of k tiles (zeros where the dose is 0).

        Args:
            frames: (k, p, p) summed frames, detected electrons.
            tile_dose: (k,) dose of each tile, e⁻/Å².
            tiles: (k,) int32 tile indices (unused: tiles are analysed on their own).
            world: the world (probe step only).
        """
        del tiles
        probs, phase, entropy, mutual = self.maps(frames, tile_dose, world)
        counts = count_peaks(jnp.moveaxis(probs[..., 2:], -1, -3), self.thresholds,
                             self.peak_radius_px)  # fmt: skip
        seen = tile_dose > 0
        return UNetFeatures(
            counts=jnp.where(seen[:, None], counts, 0.0),
            phase=seen[:, None, None] & (phase > self.phase_threshold),
            entropy=jnp.where(seen, jnp.mean(entropy, axis=(-2, -1)), 0.0),
            disagreement=jnp.where(seen, jnp.mean(mutual, axis=(-2, -1)), 0.0),
        )

    def _assemble(self, features: UNetFeatures, observed, world: World) -> Report:
        particles, mask = blob_particles(features.phase, observed, world,
                                         self.min_particle_area_A2)  # fmt: skip
        return _counts_report(world, observed, features.counts, features.phase, particles, mask)

    def uncertainty(self, state: EnvState, world: World) -> Float[Array, " T"]:
        """(T,) mean predictive entropy of each tile's column classes, nats, in [0, ln 4];
        tiles not observed get the maximum, ln 4 (nothing is known there)."""
        _check(state, world)
        features = _all_features(self, state.frames, state.tile_dose, world)
        return jnp.where(state.tile_dose > 0, features.entropy, math.log(len(_unet.CLASSES)))


def _read_record(path: Path) -> dict:
    record = json.loads(path.read_text())
    for name in ("members", "channels", "thresholds"):
        if name not in record:
            raise ValueError(f"{path} lacks the field {name!r} of a U-Net analyst record")
    return record


@functools.cache
def _load(weights: str, record: str) -> UNetAnalyst:
    info = _read_record(Path(record))
    ensemble = _unet.load_ensemble(weights, int(info["members"]), tuple(info["channels"]))
    return UNetAnalyst(
        ensemble=ensemble,
        thresholds=jnp.asarray(info["thresholds"], jnp.result_type(float)),
        phase_threshold=float(info.get("phase_threshold", 0.5)),
        peak_radius_px=int(info.get("peak_radius_px", 2)),
        min_particle_area_A2=float(info.get("min_particle_area_A2", 6.0)),
    )


def load_unet_analyst(path=None) -> UNetAnalyst:
    """The CNN analyst with trained weights.

    Args:
        path: the ``.eqx`` weights, with their record (same name, ``.json``) beside them;
            None for the shipped ones (``stemjax/worlds/stemgym/data/unet_analyst.eqx``,
            trained by ``benchmarks/train_stemgym_unet.py``).

    Raises:
        ValueError: when the weights or their record are missing or do not match.
    """
    weights = DATA_DIR / "unet_analyst.eqx" if path is None else Path(path)
    record = weights.with_suffix(".json")
    for p in (weights, record):
        if not p.is_file():
            raise ValueError(f"path must name U-Net weights with a .json record beside them; "
                             f"{str(p)!r} does not exist")  # fmt: skip
    return _load(str(weights.resolve()), str(record.resolve()))


def cnn_analyst(state: EnvState, world: World) -> Report:
    """The CNN analyst with the shipped weights (:func:`load_unet_analyst`)."""
    return load_unet_analyst()(state, world)
