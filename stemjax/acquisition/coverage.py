"""Target-space coverage: how much of the outcome range a campaign has visited.

Supplement S2c of paper 003: the outcome range is cut into B equal bins; coverage is the number
of bins holding at least one acquired outcome, divided by B, or by the number B* of bins that
the ground truth reaches (those holding at least one ground-truth value) when it is known.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from stemjax._validation import check_int_at_least, check_less
from stemjax.acquisition.context import mask_or_all


def occupied_bins(
    values: Float[ArrayLike, " n"],
    *,
    low: float,
    high: float,
    n_bins: int,
    mask: Bool[ArrayLike, " n"] | None = None,
) -> Bool[Array, " n_bins"]:
    """(n_bins,) True for the bins of [low, high] holding a valid value (``high``: last bin).

    Values outside [low, high] are ignored.
    """
    n_bins = check_int_at_least("n_bins", n_bins, 1)
    check_less("low", low, "high", high)
    values = jnp.asarray(values, jnp.result_type(values, float))
    if values.ndim != 1:
        raise ValueError(f"values must have shape (n,); got {values.shape}")
    return _occupied_core(values, mask_or_all(mask, values.shape[0]), low, high, n_bins)


@partial(jax.jit, static_argnames=("n_bins",))
def _occupied_core(values, valid, low, high, n_bins):
    valid = valid & (values >= low) & (values <= high)
    index = jnp.floor((values - low) / (high - low) * n_bins).astype(jnp.int32)
    index = jnp.clip(index, 0, n_bins - 1)
    counts = jnp.zeros((n_bins,), jnp.int32).at[index].add(valid.astype(jnp.int32))
    return counts > 0


def target_coverage(
    outcomes: Float[ArrayLike, " n"],
    *,
    low: float,
    high: float,
    n_bins: int,
    mask: Bool[ArrayLike, " n"] | None = None,
    reachable: Bool[ArrayLike, " n_bins"] | None = None,
) -> Float[Array, ""]:
    """Fraction of outcome bins visited (outcomes {0.1, 0.15, 3.9}, 25 bins on [−5, 5]: 2/25).

    Args:
        outcomes: (n,) acquired scalar outcomes.
        low, high: range of the bins (low < high), outcome units.
        n_bins: number of equal bins B (static, ≥ 1).
        mask: (n,) True for valid outcomes (default: all).
        reachable: (n_bins,) bins the ground truth reaches (:func:`occupied_bins` of the
            ground-truth map); coverage is then counted over those bins only (B*).
    """
    visited = occupied_bins(outcomes, low=low, high=high, n_bins=n_bins, mask=mask)
    if reachable is None:
        return jnp.sum(visited) / jnp.asarray(n_bins, jnp.result_type(float))
    reachable = jnp.asarray(reachable, bool)
    if reachable.shape != (n_bins,):
        raise ValueError(f"reachable must have shape ({n_bins},); got {reachable.shape}")
    hit = jnp.sum(visited & reachable)
    return hit / jnp.maximum(jnp.sum(reachable), 1).astype(jnp.result_type(float))
