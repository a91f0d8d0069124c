"""Checks on concrete inputs of public entry points.

Each check raises ``ValueError`` naming the argument, the allowed range and the value given.
Traced values (inside ``jit``/``vmap``/``grad``) cannot be inspected and are passed through:
public functions validate before tracing, where the values are still concrete.
"""

from __future__ import annotations

import jax
import numpy as np


def is_concrete(value) -> bool:
    """True when ``value`` holds no JAX tracer, so it can be checked now."""
    leaves = jax.tree_util.tree_leaves(value)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def _array(value) -> np.ndarray | None:
    if not is_concrete(value):
        return None
    return np.asarray(value, dtype=float)


def _shown(arr: np.ndarray) -> str:
    return repr(float(arr)) if arr.ndim == 0 else np.array2string(arr, threshold=6)


def check_finite(name: str, value) -> None:
    """Every entry of ``value`` must be finite (no NaN or infinity)."""
    arr = _array(value)
    if arr is not None and not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)]
        raise ValueError(
            f"{name} must be finite (no NaN or infinity); got {bad.size} non-finite "
            f"value(s), e.g. {bad.flat[0]!r}"
        )


def check_positive(name: str, value, unit: str = "") -> None:
    """Every entry of ``value`` must be finite and > 0."""
    arr = _array(value)
    if arr is not None and not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
        raise ValueError(f"{name} must be > 0{_unit(unit)} and finite; got {_shown(arr)}")


def check_nonnegative(name: str, value, unit: str = "") -> None:
    """Every entry of ``value`` must be finite and >= 0."""
    arr = _array(value)
    if arr is not None and not (np.all(np.isfinite(arr)) and np.all(arr >= 0)):
        raise ValueError(f"{name} must be >= 0{_unit(unit)} and finite; got {_shown(arr)}")


def check_in_range(name: str, value, low: float, high: float, unit: str = "") -> None:
    """Every entry of ``value`` must lie in the closed interval [low, high]."""
    arr = _array(value)
    if arr is not None and not (np.all(np.isfinite(arr)) and np.all((arr >= low) & (arr <= high))):
        raise ValueError(
            f"{name} must lie in [{low}, {high}]{_unit(unit)}; got {_shown(arr)}"
        )


def check_less(name_low: str, low, name_high: str, high, unit: str = "") -> None:
    """``low`` must be strictly smaller than ``high`` (e.g. detector inner < outer angle)."""
    lo, hi = _array(low), _array(high)
    if lo is not None and hi is not None and not np.all(lo < hi):
        raise ValueError(
            f"{name_low} must be smaller than {name_high}; got {name_low}={_shown(lo)}"
            f"{_unit(unit)} and {name_high}={_shown(hi)}{_unit(unit)}"
        )


def check_int_at_least(name: str, value, minimum: int) -> int:
    """``value`` must be a Python integer >= ``minimum``; returns it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""
