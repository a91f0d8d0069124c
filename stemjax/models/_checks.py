"""Checks on concrete inputs of the model entry points (shapes, masks, finiteness)."""

from __future__ import annotations

import numpy as np

from stemjax._validation import is_concrete


def check_data_arrays(x, y, mask) -> None:
    """x (…, n, *d), y (…, n), mask (…, n); every campaign has a true mask entry and finite
    x and y where the mask is true."""
    if y.ndim < 1:
        raise ValueError(f"y must have shape (n,) (or (batch, n)); got a scalar, shape {y.shape}")
    if x.ndim < y.ndim or x.shape[: y.ndim] != y.shape:
        raise ValueError(
            f"x must have shape (n, ...) with the n of y; got x {x.shape} and y {y.shape}"
        )
    if mask.shape != y.shape:
        raise ValueError(f"mask must have the shape of y, {y.shape}; got {mask.shape}")
    if not is_concrete((x, y, mask)):
        return
    m = np.asarray(mask, bool)
    if not np.all(m.any(axis=-1)):
        raise ValueError("mask must have at least one true entry (one observation); got none")
    yv = np.asarray(y, float)[m]
    if not np.all(np.isfinite(yv)):
        raise ValueError(
            f"y must be finite where mask is true; got {np.sum(~np.isfinite(yv))} non-finite "
            f"value(s), e.g. {yv[~np.isfinite(yv)][0]!r}"
        )
    xv = np.asarray(x, float)[m]
    if not np.all(np.isfinite(xv)):
        raise ValueError("x must be finite where mask is true; got NaN or infinity")


def check_candidates(name: str, candidates, x) -> None:
    """candidates (m, *d) with the per-point shape d of the training inputs x (n, *d)."""
    if candidates.ndim != x.ndim or candidates.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"{name} must have shape (m, {', '.join(map(str, x.shape[1:]))}) like the training "
            f"inputs x {x.shape}; got {candidates.shape} (vmap over campaigns for batched data)"
        )
    if is_concrete(candidates) and not np.all(np.isfinite(np.asarray(candidates, float))):
        raise ValueError(f"{name} must be finite (no NaN or infinity)")


def check_unbatched(data) -> None:
    if data.y.ndim != 1:
        raise ValueError(
            f"data must hold one campaign, y of shape (n,); got y {data.y.shape}: "
            "use jax.vmap over the leading axis for many campaigns"
        )
