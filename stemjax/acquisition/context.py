"""What an acquisition may need besides the posterior: the decision context.

Every acquisition in stemjax is a function ``acq(posterior, context) -> (m,) scores``. The
posterior (:class:`stemjax.posterior.Posterior`) describes the m candidates; the
:class:`Context` carries everything else a score may depend on, each field optional and each
a fixed-shape array, so that contexts of many campaigns stack and ``jax.vmap`` gives
(campaigns, candidates) scores. Growing sets (observed outcomes, seen compositions, recent
positions) are fixed-capacity buffers with a boolean mask.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray, Shaped

from stemjax._validation import is_concrete
from stemjax.posterior import Posterior


def _array_or_none(value):
    return None if value is None else jnp.asarray(value)


def _field():
    return eqx.field(default=None, converter=_array_or_none)


class Context(eqx.Module):
    """Decision context of one campaign at one step (every field optional).

    Attributes:
        best: () incumbent, the best objective value observed so far (objective units; the
            largest when maximising, the smallest when minimising). When None, improvement-based
            acquisitions take it from the masked ``outcomes``.
        key: PRNG key for random acquisitions (Thompson, BEACON); split it between steps.
        positions: (m, d) stage/beam coordinates of the candidates, µm.
        position: (d,) current beam position (centre of the current field of view), µm.
        costs: (m,) precomputed cost of measuring each candidate (> 0, any consistent unit).
        dose: (m,) electron dose a measurement at each candidate would deliver, e⁻/Å².
        accumulated_dose: (m,) dose each candidate has already received, e⁻/Å².
        outcomes: (n,) or (n, p) archive of observed outcomes (fixed capacity n).
        outcome_mask: (n,) True where ``outcomes`` holds an observation (default: all).
        elite_scores: (n,) criterion ranking the archive for BEACON's elite set (default: the
            scalar outcomes themselves).
        compositions: (k, q) candidate compositions on the simplex (fractions summing to 1).
        seen_compositions: (s, q) compositions measured so far (fixed capacity s).
        seen_mask: (s,) True where ``seen_compositions`` holds a measurement.
        visited: (r, d) recently visited positions, µm (fixed capacity r).
        visited_mask: (r,) True where ``visited`` holds a position.
        visited_age: (r,) steps since each visit (0 = the last step; default 0).
    """

    best: Float[Array, ""] | None = _field()
    key: PRNGKeyArray | None = _field()
    positions: Float[Array, "m d"] | None = _field()
    position: Float[Array, " d"] | None = _field()
    costs: Float[Array, " m"] | None = _field()
    dose: Float[Array, " m"] | None = _field()
    accumulated_dose: Float[Array, " m"] | None = _field()
    outcomes: Float[Array, "n *p"] | None = _field()
    outcome_mask: Bool[Array, " n"] | None = _field()
    elite_scores: Float[Array, " n"] | None = _field()
    compositions: Float[Array, "k q"] | None = _field()
    seen_compositions: Float[Array, "s q"] | None = _field()
    seen_mask: Bool[Array, " s"] | None = _field()
    visited: Float[Array, "r d"] | None = _field()
    visited_mask: Bool[Array, " r"] | None = _field()
    visited_age: Shaped[Array, " r"] | None = _field()


def require(context: Context, name: str, needed_by: str):
    """The context field ``name``; a ValueError saying who needs it when it is None."""
    value = getattr(context, name)
    if value is None:
        raise ValueError(f"{needed_by} needs context.{name}; got None")
    return value


def mask_or_all(mask: Array | None, n: int) -> Array:
    """(n,) boolean mask, all True when ``mask`` is None."""
    if mask is None:
        return jnp.ones((n,), bool)
    mask = jnp.asarray(mask)
    if mask.shape != (n,):
        raise ValueError(f"mask must have shape ({n},) to match its buffer; got {mask.shape}")
    return mask.astype(bool)


def incumbent(context: Context, maximize: bool, needed_by: str) -> Array:
    """The incumbent ``context.best``, or the best masked scalar outcome when it is None.

    With no valid outcome the incumbent is −∞ (maximising) or +∞ (minimising): every
    candidate then improves on it.
    """
    if context.best is not None:
        return context.best
    if context.outcomes is None:
        raise ValueError(f"{needed_by} needs context.best or context.outcomes; got neither")
    outcomes = context.outcomes
    if outcomes.ndim != 1:
        raise ValueError(
            f"{needed_by} takes the incumbent from scalar outcomes of shape (n,); got "
            f"context.outcomes of shape {outcomes.shape}: set context.best"
        )
    mask = mask_or_all(context.outcome_mask, outcomes.shape[0])
    if maximize:
        return jnp.max(jnp.where(mask, outcomes, -jnp.inf))
    return jnp.min(jnp.where(mask, outcomes, jnp.inf))


def check_posterior(posterior: Posterior) -> None:
    """Shapes agree and (when concrete) the variance is finite and ≥ 0."""
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a stemjax.posterior.Posterior; got {type(posterior)}")
    mean, variance = jnp.shape(posterior.mean), jnp.shape(posterior.variance)
    if mean != variance:
        raise ValueError(
            f"posterior.mean and posterior.variance must have the same shape; got {mean} and "
            f"{variance}"
        )
    if posterior.samples is not None and jnp.shape(posterior.samples)[1:] != mean:
        raise ValueError(
            f"posterior.samples must have shape (s, *{mean}); got {jnp.shape(posterior.samples)}"
        )
    if is_concrete(posterior.variance):
        var = np.asarray(posterior.variance, dtype=float)
        if not np.all(np.isfinite(var)) or np.any(var < 0):
            bad = var[~(np.isfinite(var) & (var >= 0))]
            raise ValueError(
                f"posterior.variance must be >= 0 and finite; got {bad.size} bad value(s), "
                f"e.g. {bad.flat[0]!r} (clip round-off negatives with jnp.maximum(variance, 0))"
            )
