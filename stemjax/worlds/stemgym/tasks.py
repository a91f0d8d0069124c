"""STEMGym tasks: the analysis an agent reports and its score against the ground truth.

Four tasks (shared/papers/000), each scored in [0, 1] from a fixed-shape :class:`Report`:

- ``"census"``: count the vacancies and substitutions of every tile. Score
  1 − Σ_t,k |ĉ_tk − c_tk| / Σ_t,k c_tk (clipped at 0), with ĉ = 0 on tiles not credited, so
  missed tiles cost their true count and errors never cancel between tiles.
- ``"phase"``: label every probe position of a tile with its phase (0 matrix or support,
  1 grain or particle). Score: balanced accuracy over the valid field, the mean over the
  phases present of the fraction of that phase's positions labelled right in credited tiles
  (labelling everything 0 scores 0.5 on a fully seen two-phase field, not 1 − phase-1 area).
- ``"search"``: find the defects of the world's target type (``truth.target_type``): report
  how many were found in each tile. Score: F1 = 2·TP / (Σ found + Σ true) with
  TP = Σ_t min(found_t, true_t) over credited tiles. Per-tile counts rather than positions,
  so residual drift (up to 2 Å) does not decide a match.
- ``"particles"``: list the grains / particles (x, y, radius in Å). A true disc is matched
  by the nearest valid reported centre lying inside it, and earns 1 − |r̂ − r|/r (≥ 0).
  Score: Σ earned / max(true discs, valid reported discs), so misses, false and duplicate
  reports all cost. A reported disc is valid when its mask is set, its radius > 0 and its
  centre lies in a credited tile.

Only what was seen can be credited: a tile is *credited* when the report marks it
``analysed`` and, if ``observed`` is given to :func:`task_score`, the tile was observed.
When a field holds nothing to count (no defects, or no targets) the census and search
scores are the credited fraction of the field if nothing was reported there, else 0, so an
empty report always scores 0 and a perfect report of the whole field always scores 1.

:func:`ground_truth_report` is the report of a perfect analyst who saw the given tiles: the
upper bound, and the oracle behind the environment's reward.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from stemjax._validation import is_concrete
from stemjax.physics.specimen import SUBSTITUTION, VACANCY
from stemjax.worlds.stemgym.worlds import World

__all__ = [
    "TASKS",
    "Report",
    "empty_report",
    "ground_truth_report",
    "task_index",
    "task_score",
    "task_scores",
    "tile_defect_counts",
    "tile_phase_maps",
    "tile_target_counts",
]

TASKS = ("census", "phase", "search", "particles")
"""The four STEMGym tasks, in the order of :func:`task_scores` and ``EnvState.task``."""


class Report(eqx.Module):
    """An agent's analysis of a world, of fixed shape (T tiles of p × p, P disc slots).

    Attributes:
        analysed: (T,) bool, the tiles the analysis covers (only these can earn credit).
        defect_counts: (T, 2) vacancies and substitutions found in each tile (census).
        phase_map: (T, p, p) int32 phase label of each probe position of each tile, in the
            tile's own raster order (phase).
        targets_found: (T,) defects of the target type found in each tile (search).
        particles: (P, 3) grains / particles found, (x, y, radius) in Å, field coordinates
            (particles).
        particles_mask: (P,) bool, which rows of ``particles`` are reported.
    """

    analysed: Bool[Array, " T"]
    defect_counts: Float[Array, "T 2"]
    phase_map: Int[Array, "T p p"]
    targets_found: Float[Array, " T"]
    particles: Float[Array, "P 3"]
    particles_mask: Bool[Array, " P"]


def empty_report(world: World) -> Report:
    """The report of an agent that analysed nothing (every score 0)."""
    t, (p, _), n_p = world.n_tiles, world.tile_shape, world.n_discs
    dtype = world.field.origin.dtype
    return Report(
        analysed=jnp.zeros(t, bool),
        defect_counts=jnp.zeros((t, 2), dtype),
        phase_map=jnp.zeros((t, p, p), jnp.int32),
        targets_found=jnp.zeros(t, dtype),
        particles=jnp.zeros((n_p, 3), dtype),
        particles_mask=jnp.zeros(n_p, bool),
    )


def task_index(task) -> Int[Array, ""] | int:
    """Index of ``task`` in :data:`TASKS`: a name, an int in [0, 3], or a traced int."""
    if isinstance(task, str):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS} (or its index 0-3); got {task!r}")
        return TASKS.index(task)
    if is_concrete(task):
        value = np.asarray(task)
        integer = value.shape == () and np.issubdtype(value.dtype, np.integer)
        if not integer or not 0 <= int(value) < len(TASKS):
            raise ValueError(f"task must be one of {TASKS} or an integer in [0, 3]; got {task!r}")
        return int(value)
    return jnp.asarray(task, jnp.int32)


# --------------------------------------------------------------------------------------------
# ground truth by tile


def _valid_sites(world: World) -> Bool[Array, " n"]:
    """(n,) present sites inside the field and over the valid region."""
    truth = world.truth
    inside = truth.present & (truth.site_tile >= 0)
    pixel = jnp.floor((truth.atom_xy - world.field_lower_A) / world.pixel_A).astype(jnp.int32)
    h, w = world.field.shape
    row, col = jnp.clip(pixel[:, 1], 0, h - 1), jnp.clip(pixel[:, 0], 0, w - 1)
    return inside & truth.valid_region[row, col]


def _per_tile(world: World, values: Array) -> Array:
    tile = jnp.where(world.truth.site_tile >= 0, world.truth.site_tile, world.n_tiles)
    return jax.ops.segment_sum(values, tile, num_segments=world.n_tiles + 1)[: world.n_tiles]


def tile_defect_counts(world: World, atom_types=None) -> Float[Array, "T 2"]:
    """(T, 2) true vacancies and substitutions in each tile (valid sites only).

    Args:
        world: the world.
        atom_types: (n,) atom types to count instead of the truth's (e.g. a damaged
            specimen's, ``EnvState.atom_types``); None for the world as prepared.
    """
    types = world.truth.atom_types if atom_types is None else jnp.asarray(atom_types)
    valid = _valid_sites(world)
    dtype = world.field.origin.dtype
    kinds = jnp.stack([valid & (types == VACANCY), valid & (types == SUBSTITUTION)], axis=-1)
    return _per_tile(world, kinds.astype(dtype))


def tile_target_counts(world: World, atom_types=None) -> Float[Array, " T"]:
    """(T,) true defects of the world's target type in each tile (valid sites only)."""
    counts = tile_defect_counts(world, atom_types)
    return jnp.where(world.truth.target_type == VACANCY, counts[:, 0], counts[:, 1])


def _tiles(world: World, image: Array) -> Array:
    """(H, W) field array → (T, p, p) tiles, row-major tile order."""
    n, p = world.tiles, world.tile_px
    return image.reshape(n, p, n, p).transpose(0, 2, 1, 3).reshape(n * n, p, p)


def tile_phase_maps(world: World) -> Int[Array, "T p p"]:
    """(T, p, p) true phase label of every probe position, by tile."""
    return _tiles(world, world.truth.phase_map)


def ground_truth_report(world: World, observed_mask, atom_types=None) -> Report:
    """The report of a perfect analyst who saw the tiles in ``observed_mask``.

    Scores 1 on every task when every tile is observed (and ``atom_types`` is None).

    Args:
        world: the world.
        observed_mask: (T,) bool, the tiles seen.
        atom_types: (n,) atom types the analyst sees instead of the truth's, e.g. those of a
            beam-damaged specimen; None for the world as prepared.
    """
    seen = jnp.asarray(observed_mask, bool)
    if seen.shape != (world.n_tiles,):
        raise ValueError(f"observed_mask must have shape ({world.n_tiles},), one entry per "
                         f"tile; got {seen.shape}")  # fmt: skip
    types = None if atom_types is None else jnp.asarray(atom_types)
    return _ground_truth_report(world, seen, types)


@eqx.filter_jit
def _ground_truth_report(world: World, seen, atom_types) -> Report:
    counts = tile_defect_counts(world, atom_types)
    discs = world.truth.discs
    in_seen = seen[jnp.clip(world.tile_of(discs[:, :2]), 0, world.n_tiles - 1)]
    keep = (discs[:, 2] > 0) & (world.tile_of(discs[:, :2]) >= 0) & in_seen
    return Report(
        analysed=seen,
        defect_counts=jnp.where(seen[:, None], counts, 0.0),
        phase_map=jnp.where(seen[:, None, None], tile_phase_maps(world), 0),
        targets_found=jnp.where(seen, tile_target_counts(world, atom_types), 0.0),
        particles=jnp.where(keep[:, None], discs, 0.0),
        particles_mask=keep,
    )


# --------------------------------------------------------------------------------------------
# scores


def _check_report(world: World, report: Report, observed) -> None:
    if not isinstance(report, Report):
        raise ValueError(f"report must be a stemjax.worlds.stemgym.Report; got {type(report)}")
    t, (p, _), n_p = world.n_tiles, world.tile_shape, world.n_discs
    expected = {"analysed": (t,), "defect_counts": (t, 2), "phase_map": (t, p, p),
                "targets_found": (t,), "particles": (n_p, 3), "particles_mask": (n_p,)}  # fmt: skip
    for name, shape in expected.items():
        got = jnp.shape(getattr(report, name))
        if got != shape:
            raise ValueError(f"report.{name} must have shape {shape} for this world; got {got}")
        value = getattr(report, name)
        if is_concrete(value) and not np.all(np.isfinite(np.asarray(value, float))):
            raise ValueError(f"report.{name} must be finite (no NaN or infinity)")
    if observed is not None and jnp.shape(observed) != (t,):
        raise ValueError(f"observed must have shape ({t},), one entry per tile; got "
                         f"{jnp.shape(observed)}")  # fmt: skip


def _count_score(estimate, truth, credited):
    """1 − Σ|ê − c| / Σc (clipped), or the credited fraction when Σc = 0 and ê = 0."""
    estimate = jnp.where(credited.reshape(credited.shape + (1,) * (truth.ndim - 1)), estimate, 0.0)
    error = jnp.sum(jnp.abs(estimate - truth))
    total = jnp.sum(truth)
    safe = jnp.where(total > 0, total, 1.0)
    nothing = jnp.mean(credited.astype(truth.dtype)) * (jnp.sum(jnp.abs(estimate)) == 0)
    return jnp.where(total > 0, jnp.clip(1.0 - error / safe, 0.0, 1.0), nothing)


def _census(world, report, credited):
    return _count_score(report.defect_counts, tile_defect_counts(world), credited)


def _phase(world, report, credited):
    truth = tile_phase_maps(world)
    valid = _tiles(world, world.truth.valid_region)
    right = credited[:, None, None] & (report.phase_map == truth) & valid
    total, score = 0.0, 0.0
    for label in (0, 1):
        members = jnp.sum(valid & (truth == label))
        hits = jnp.sum(right & (truth == label))
        score = score + jnp.where(members > 0, hits / jnp.maximum(members, 1), 0.0)
        total = total + (members > 0)
    return score / jnp.maximum(total, 1)


def _search(world, report, credited):
    truth = tile_target_counts(world)
    found = jnp.where(credited, jnp.maximum(report.targets_found, 0.0), 0.0)
    hits = jnp.sum(jnp.minimum(found, truth))
    total, reported = jnp.sum(truth), jnp.sum(found)
    f1 = 2.0 * hits / jnp.where(total > 0, total + reported, 1.0)
    nothing = jnp.mean(credited.astype(truth.dtype)) * (reported == 0)
    return jnp.where(total > 0, jnp.clip(f1, 0.0, 1.0), nothing)


def _particles(world, report, credited):
    discs = world.truth.discs
    used = discs[:, 2] > 0
    xy, r = report.particles[:, :2], report.particles[:, 2]
    tile = world.tile_of(xy)
    valid = (report.particles_mask & (r > 0) & (tile >= 0)
             & credited[jnp.clip(tile, 0, world.n_tiles - 1)])  # fmt: skip
    d2 = jnp.sum((discs[:, None, :2] - xy[None]) ** 2, axis=-1)  # (true, reported)
    within = used[:, None] & valid[None] & (d2 < discs[:, 2:3] ** 2)
    nearest = jnp.argmin(jnp.where(within, d2, jnp.inf), axis=1)
    r_true = jnp.where(used, discs[:, 2], 1.0)
    earned = jnp.maximum(0.0, 1.0 - jnp.abs(r[nearest] - r_true) / r_true)
    earned = jnp.where(jnp.any(within, axis=1), earned, 0.0)
    denominator = jnp.maximum(jnp.maximum(jnp.sum(used), jnp.sum(valid)), 1)
    return jnp.sum(earned) / denominator


_SCORES = (_census, _phase, _search, _particles)


def task_scores(world: World, report: Report, observed=None) -> Float[Array, "4"]:
    """(4,) scores of ``report`` on every task, in the order of :data:`TASKS`, each in [0, 1].

    Args:
        world: the world (its ground truth).
        report: the agent's analysis.
        observed: (T,) bool, the tiles the agent observed (e.g. ``EnvState.observed``); None
            to trust ``report.analysed``.
    """
    _check_report(world, report, observed)
    credited = jnp.asarray(report.analysed, bool)
    if observed is not None:
        credited = credited & jnp.asarray(observed, bool)
    return _task_scores(world, report, credited)


@eqx.filter_jit
def _task_scores(world: World, report: Report, credited) -> Array:
    leaves = [report.defect_counts, report.targets_found, report.particles]
    bad = jnp.any(jnp.stack([jnp.any(~jnp.isfinite(x)) for x in leaves]))
    scores = jnp.stack([f(world, report, credited) for f in _SCORES])
    return eqx.error_if(scores, bad, "report holds NaN or infinite values")


def task_score(task, world: World, report: Report, observed=None) -> Float[Array, ""]:
    """Score in [0, 1] of ``report`` on ``task`` (see the module docstring for definitions).

    Args:
        task: a name in :data:`TASKS`, or its index (may be traced, e.g. ``EnvState.task``).
        world: the world (its ground truth).
        report: the agent's analysis.
        observed: (T,) bool, the tiles the agent observed; None to trust ``report.analysed``.

    Raises:
        ValueError: for an unknown task, or a report or mask of the wrong shape or with
            non-finite values (the message names the field, the shape wanted and the one given).
    """
    index = task_index(task)
    return task_scores(world, report, observed)[index]
