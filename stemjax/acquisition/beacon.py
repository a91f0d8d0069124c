"""BEACON: novelty search in outcome space with Thompson samples and k-nearest neighbours.

Reference form (Tang, Chakrabarty & Paulson, "BEACON: A Bayesian optimization strategy for
novelty search in expensive black-box systems", 2024): draw a Thompson sample ŷ(x) of the
outcome at every candidate and score it by the sum of its distances to the k nearest observed
outcomes (k = 10; all of them when fewer than k have been observed):

    α(x) = Σ_{j=1..k} ‖ŷ(x) − y_j‖,   y_j ∈ NN_k(ŷ(x), D_n)

Microscopy variant (BEACON-DKL, shared/papers/003, eq. 2 and Algorithm 1): the reference set is
an elite set E, the top fraction of the observations by a physical criterion; the sample and
the elite outcomes are z-scored with the elite mean and standard deviation, and the score is
the mean distance to the k nearest elite outcomes:

    α(x) = (1/k) Σ_{j=1..k} ‖ẑ(x) − z_j‖,   z = (y − mean_E)/std_E,  z_j ∈ NN_k(ẑ(x), E)

Outcomes may be scalars (n,) or vectors (n, p) (distances are Euclidean). The archive is a
fixed-capacity buffer with a mask, so the score does not depend on the order of its entries
and campaigns with different numbers of observations vmap together.
"""

from __future__ import annotations

import math
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from stemjax._validation import check_int_at_least
from stemjax.acquisition._checks import check_fraction
from stemjax.acquisition.combinators import AcquisitionFunction
from stemjax.acquisition.context import Context, mask_or_all, require
from stemjax.acquisition.thompson import _draw
from stemjax.posterior import Posterior

DEFAULT_K = 10
DEFAULT_ELITE_FRACTION = 0.2
_RANK_BY_COUNTING = 32  # archives up to this size pick neighbours by counting, beyond by top_k


def _as_vectors(x: Array) -> Array:
    return x[..., None] if x.ndim == 1 else x


def knn_distance(
    points: Float[ArrayLike, "m *p"],
    archive: Float[ArrayLike, "n *p"],
    mask: Bool[ArrayLike, " n"] | None = None,
    *,
    k: int = DEFAULT_K,
    reduce: str = "sum",
) -> Float[Array, " m"]:
    """Sum (or mean) of the distances from each point to its k nearest valid archive entries.

    Args:
        points: (m,) scalars or (m, p) vectors.
        archive: (n,) or (n, p) entries, same trailing shape as ``points``.
        mask: (n,) True for valid entries (default: all).
        k: neighbours (static, ≥ 1); fewer are used when fewer entries are valid.
        reduce: "sum" (reference BEACON) or "mean" (the microscopy variant; divides by the
            number of neighbours actually used).

    Returns:
        (m,) distances; 0 where the archive holds no valid entry.
    """
    k = check_int_at_least("k", k, 1)
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce must be 'sum' or 'mean'; got {reduce!r}")
    dtype = jnp.result_type(points, archive, float)
    x, y = jnp.asarray(points, dtype), jnp.asarray(archive, dtype)
    if x.ndim not in (1, 2) or x.ndim != y.ndim or x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"points (m[, p]) and archive (n[, p]) must have matching trailing shapes; got "
            f"{x.shape} and {y.shape}"
        )
    return _knn_core(x, y, mask_or_all(mask, y.shape[0]), k, reduce)


@partial(jax.jit, static_argnames=("k", "reduce"))
def _knn_core(x: Array, y: Array, valid: Array, k: int, reduce: str) -> Array:
    if x.ndim == 1:
        distance = jnp.abs(x[:, None] - y[None, :])
    else:
        diff = x[:, None, :] - y[None, :, :]
        sq = jnp.sum(diff * diff, -1)
        safe = jnp.where(sq > 0, sq, 1.0)
        distance = jnp.where(sq > 0, jnp.sqrt(safe), 0.0)
    n = y.shape[0]
    used = min(k, n)
    if used == 0:
        return jnp.zeros(x.shape[:1], x.dtype)
    distance = jnp.where(valid[None, :], distance, jnp.inf)
    if n <= _RANK_BY_COUNTING:
        # Rank of each entry in its row (ties broken by position): no sort, and for small
        # archives several times faster than top_k on CPU.
        earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # [j, i]: i before j
        smaller = distance[:, None, :] < distance[:, :, None]  # [., j, i]: d_i < d_j
        tied = (distance[:, None, :] == distance[:, :, None]) & earlier[None]
        rank = jnp.sum(smaller | tied, axis=-1)
        keep = (rank < used) & jnp.isfinite(distance)
        total = jnp.sum(jnp.where(keep, distance, 0.0), axis=-1)
        found = jnp.sum(keep, axis=-1)
    else:
        negated, _ = jax.lax.top_k(-distance, used)
        kept = jnp.isfinite(negated)
        total = -jnp.sum(jnp.where(kept, negated, 0.0), axis=-1)
        found = jnp.sum(kept, axis=-1)
    if reduce == "sum":
        return total
    return total / jnp.maximum(found, 1).astype(x.dtype)


def elite_mask(
    scores: Float[ArrayLike, " n"],
    mask: Bool[ArrayLike, " n"] | None = None,
    *,
    fraction: float = DEFAULT_ELITE_FRACTION,
) -> Bool[Array, " n"]:
    """The elite set: the ⌈fraction · n_valid⌉ (at least 1) valid entries with the largest score.

    Args:
        scores: (n,) criterion ranking the archive (larger is more elite).
        mask: (n,) True for valid entries (default: all).
        fraction: elite fraction in (0, 1].

    Returns:
        (n,) boolean mask of the elite entries (ties broken by position).
    """
    check_fraction("fraction", fraction, closed_low=False, closed_high=True)
    scores = jnp.asarray(scores, jnp.result_type(scores, float))
    if scores.ndim != 1:
        raise ValueError(f"scores must have shape (n,); got {scores.shape}")
    return _elite_core(scores, mask_or_all(mask, scores.shape[0]), float(fraction))


@partial(jax.jit, static_argnames=("fraction",))
def _elite_core(scores: Array, valid: Array, fraction: float) -> Array:
    n = scores.shape[0]
    n_elite = jnp.maximum(jnp.ceil(fraction * jnp.sum(valid) - 1e-9), 1)
    order = jnp.argsort(jnp.where(valid, -scores, jnp.inf), stable=True)
    rank = jnp.zeros((n,), jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
    return valid & (rank < n_elite)


def beacon_novelty(
    sample: Float[ArrayLike, "m *p"],
    outcomes: Float[ArrayLike, "n *p"],
    mask: Bool[ArrayLike, " n"] | None = None,
    *,
    k: int = DEFAULT_K,
) -> Float[Array, " m"]:
    """Reference BEACON score: sum of distances from the sample to its k nearest outcomes.

    Archive {0, 1, 2, 3}, sample 1.4, k = 2 → 1.0. See :func:`knn_distance` for shapes.
    """
    return knn_distance(sample, outcomes, mask, k=k, reduce="sum")


def beacon_elite_novelty(
    sample: Float[ArrayLike, "m *p"],
    outcomes: Float[ArrayLike, "n *p"],
    mask: Bool[ArrayLike, " n"] | None = None,
    *,
    elite_scores: Float[ArrayLike, " n"] | None = None,
    k: int = DEFAULT_K,
    elite_fraction: float = DEFAULT_ELITE_FRACTION,
) -> Float[Array, " m"]:
    """BEACON-DKL score: mean distance to the k nearest elite outcomes, after elite z-scoring.

    Args:
        sample: (m,) or (m, p) Thompson sample at the candidates.
        outcomes: (n,) or (n, p) observed outcomes.
        mask: (n,) True for valid outcomes (default: all).
        elite_scores: (n,) criterion for the elite ranking; default the scalar outcomes
            (required for vector outcomes).
        k: neighbours (≥ 1).
        elite_fraction: top fraction kept in the elite set, in (0, 1].

    Returns:
        (m,) novelty; 0 with no valid outcome. Each outcome dimension is scaled by the elite
        standard deviation (1 where that is 0, e.g. a one-member elite).
    """
    k = check_int_at_least("k", k, 1)
    check_fraction("elite_fraction", elite_fraction, closed_low=False, closed_high=True)
    dtype = jnp.result_type(sample, outcomes, float)
    x, y = jnp.asarray(sample, dtype), jnp.asarray(outcomes, dtype)
    if x.ndim not in (1, 2) or x.ndim != y.ndim or x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"sample (m[, p]) and outcomes (n[, p]) must have matching trailing shapes; got "
            f"{x.shape} and {y.shape}"
        )
    if elite_scores is None:
        if y.ndim != 1:
            raise ValueError(
                f"beacon_elite_novelty needs elite_scores (n,) for vector outcomes of shape "
                f"{y.shape}"
            )
        elite_scores = y
    elite_scores = jnp.asarray(elite_scores, dtype)
    if elite_scores.shape != y.shape[:1]:
        raise ValueError(f"elite_scores must have shape {y.shape[:1]}; got {elite_scores.shape}")
    return _elite_novelty_core(x, y, mask_or_all(mask, y.shape[0]), elite_scores, k,
                               float(elite_fraction))


@partial(jax.jit, static_argnames=("k", "fraction"))
def _elite_novelty_core(x, y, valid, elite_scores, k, fraction):
    elite = _elite_core(elite_scores, valid, fraction)
    vectors = _as_vectors(y)
    weight = elite.astype(y.dtype)[:, None]
    count = jnp.maximum(jnp.sum(weight), 1.0)
    centre = jnp.sum(weight * vectors, axis=0) / count
    spread = jnp.sqrt(jnp.sum(weight * (vectors - centre) ** 2, axis=0) / count)
    spread = jnp.where(spread > 0, spread, 1.0)
    # the elite holds at most ⌈fraction · n⌉ entries: gather them to the front, so the
    # neighbour search runs over that many columns instead of the whole archive
    n = y.shape[0]
    width = min(n, max(1, math.ceil(fraction * n - 1e-9)))
    front = jnp.argsort(~elite, stable=True)[:width]
    zx, zy = (_as_vectors(x) - centre) / spread, (vectors[front] - centre) / spread
    if y.ndim == 1:
        zx, zy = zx[:, 0], zy[:, 0]
    return _knn_core(zx, zy, elite[front], k, "mean")


class Beacon(AcquisitionFunction):
    """Reference BEACON on ``context.outcomes`` / ``outcome_mask`` (see :func:`beacon`)."""

    k: int = eqx.field(static=True, default=DEFAULT_K)
    index: int = eqx.field(static=True, default=0)

    def score(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        outcomes = require(context, "outcomes", "beacon")
        sample = _draw(posterior, context, self.index, "beacon")
        return beacon_novelty(sample, outcomes, context.outcome_mask, k=self.k)


class BeaconElite(AcquisitionFunction):
    """BEACON-DKL with an elite set (see :func:`beacon_elite`)."""

    k: int = eqx.field(static=True, default=DEFAULT_K)
    elite_fraction: float = eqx.field(static=True, default=DEFAULT_ELITE_FRACTION)
    index: int = eqx.field(static=True, default=0)

    def score(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        outcomes = require(context, "outcomes", "beacon_elite")
        sample = _draw(posterior, context, self.index, "beacon_elite")
        return beacon_elite_novelty(sample, outcomes, context.outcome_mask,
                                    elite_scores=context.elite_scores, k=self.k,
                                    elite_fraction=self.elite_fraction)


def beacon(k: int = DEFAULT_K, index: int = 0) -> Beacon:
    """Reference BEACON: Thompson sample, sum of distances to its k nearest observed outcomes.

    Needs ``context.outcomes`` (+ ``outcome_mask``) and either ``posterior.samples`` or
    ``context.key``. Vector outcomes need a posterior of shape (m, p).
    """
    check_int_at_least("k", k, 1)
    check_int_at_least("index", index, 0)
    return Beacon(k, index)


def beacon_elite(
    k: int = DEFAULT_K, elite_fraction: float = DEFAULT_ELITE_FRACTION, index: int = 0
) -> BeaconElite:
    """BEACON-DKL (paper 003): elite z-scoring, mean distance to the k nearest elite outcomes.

    The elite set is ranked by ``context.elite_scores`` (default: the scalar outcomes).
    """
    check_int_at_least("k", k, 1)
    check_fraction("elite_fraction", elite_fraction, closed_low=False, closed_high=True)
    check_int_at_least("index", index, 0)
    return BeaconElite(k, float(elite_fraction), index)

