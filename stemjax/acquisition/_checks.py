"""Checks specific to acquisitions (the general ones live in ``stemjax._validation``)."""

from __future__ import annotations

import numpy as np

from stemjax._validation import is_concrete

SIMPLEX_ATOL = 1e-4
"""Allowed deviation of a composition's sum from 1 (and of a fraction below 0)."""


def check_simplex(name: str, compositions, mask=None) -> None:
    """Rows of ``compositions`` (..., q): fractions ≥ 0 summing to 1 (masked rows skipped)."""
    if not is_concrete(compositions) or (mask is not None and not is_concrete(mask)):
        return
    comps = np.asarray(compositions, dtype=float)
    if comps.ndim < 1 or comps.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (..., q) with q >= 1; got {comps.shape}")
    rows = comps.reshape(-1, comps.shape[-1])
    keep = np.ones(rows.shape[0], bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    rows = rows[keep]
    if rows.size == 0:
        return
    sums = rows.sum(-1)
    bad = (
        ~np.all(np.isfinite(rows), -1)
        | np.any(rows < -SIMPLEX_ATOL, -1)
        | (np.abs(sums - 1.0) > SIMPLEX_ATOL)
    )
    if np.any(bad):
        row = rows[np.argmax(bad)]
        raise ValueError(
            f"{name} must lie on the simplex (fractions >= 0 summing to 1 within "
            f"{SIMPLEX_ATOL}); got {int(bad.sum())} row(s) off it, e.g. "
            f"{np.array2string(row, precision=4)} (sum {row.sum():.6g})"
        )


def check_fraction(name: str, value, *, closed_low: bool, closed_high: bool) -> None:
    """A scalar fraction in [0, 1] with the stated open/closed ends."""
    if not is_concrete(value):
        return
    v = float(np.asarray(value))
    low_ok = v >= 0 if closed_low else v > 0
    high_ok = v <= 1 if closed_high else v < 1
    if not (np.isfinite(v) and low_ok and high_ok):
        interval = f"{'[' if closed_low else '('}0, 1{']' if closed_high else ')'}"
        raise ValueError(f"{name} must lie in {interval}; got {v!r}")
