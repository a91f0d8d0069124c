"""Statistics across campaigns: bootstrap intervals, paired Wilcoxon tests, policy comparisons.

These summarise finished sweeps for reports, so they are plain NumPy on concrete arrays (JAX
arrays are accepted and converted). Each campaign is one independent replicate; two policies run
on the same campaign seeds form paired samples.

- :func:`bootstrap_mean_ci`: the mean over campaigns with a percentile-bootstrap interval
  (Efron & Tibshirani 1993, ch. 13), for scalars or whole learning curves at once.
- :func:`paired_wilcoxon`: the two-sided Wilcoxon signed-rank test (Wilcoxon 1945) on paired
  differences.
- :func:`compare_policies`: every pair of policies, with Holm's step-down correction
  (Holm 1979) over the pairs (:func:`holm`).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from scipy.stats import norm

from stemjax._validation import check_int_at_least


def _finite_array(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)]
        raise ValueError(f"{name} must be finite (no NaN or infinity); got {bad.size} "
                         f"non-finite value(s), e.g. {bad.flat[0]!r}")  # fmt: skip
    return arr


def bootstrap_mean_ci(
    values,
    *,
    axis: int = 0,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over campaigns and its percentile-bootstrap confidence interval.

    The C campaigns along ``axis`` are resampled with replacement ``n_resamples`` times; the
    interval is the (1 − level)/2 and (1 + level)/2 quantiles of the resampled means. All
    resamples are drawn at once as multinomial counts (n_resamples, C) and applied by one matrix
    product, so curves of shape (C, T) cost O(n_resamples · C · T) without a Python loop. The
    percentile interval slightly undercovers for small C (about 93 % at C = 30 for a 95 % level).

    Args:
        values: array with C ≥ 2 finite campaigns along ``axis``, e.g. (C,) or (C, T).
        axis: the campaign axis.
        n_resamples: number of bootstrap resamples, ≥ 1.
        level: confidence level, in (0, 1).
        seed: seed of NumPy's generator (same seed, same interval).

    Returns:
        (mean, low, high), each of the shape of ``values`` without ``axis`` (0-d arrays for (C,)).
    """
    values = _finite_array("values", values)
    if values.ndim == 0:
        raise ValueError("values must have a campaign axis; got a scalar")
    try:
        values = np.moveaxis(values, axis, 0)
    except np.exceptions.AxisError:
        raise ValueError(f"axis must be in [{-values.ndim}, {values.ndim - 1}] for values of "
                         f"shape {values.shape}; got {axis}") from None  # fmt: skip
    c = values.shape[0]
    if c < 2:
        raise ValueError(f"values must hold at least 2 campaigns along axis {axis}; got {c}")
    n_resamples = check_int_at_least("n_resamples", n_resamples, 1)
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(c, np.full(c, 1.0 / c), size=n_resamples)  # (R, C)
    flat = values.reshape(c, -1)
    means = counts @ flat / c  # (R, T)
    tail = (1.0 - float(level)) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    shape = values.shape[1:]
    return flat.mean(axis=0).reshape(shape), low.reshape(shape), high.reshape(shape)


class WilcoxonResult(NamedTuple):
    """Result of :func:`paired_wilcoxon`.

    Attributes:
        statistic: min(W⁺, W⁻), the smaller of the rank sums of the positive and negative
            differences (as scipy.stats.wilcoxon reports for the two-sided test).
        p_value: two-sided p-value.
        n: number of non-zero differences, the sample size of the test.
        median_difference: median of all differences a − b (zeros included).
    """

    statistic: float
    p_value: float
    n: int
    median_difference: float


def _average_ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..n of x with ties given their average rank, and the size of each tie group."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts  # number of smaller values
    return (starts + (counts + 1) / 2.0)[inverse], counts


def _signed_rank_null(n: int) -> np.ndarray:
    """P(W⁺ = s), s = 0..n(n+1)/2, under H0 with no ties: subset sums of {1..n}, by DP."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for r in range(1, n + 1):
        counts[r:] = counts[r:] + counts[:-r].copy()
    return counts / 2.0**n


_EXACT_MAX_N = 25


def paired_wilcoxon(a, b) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of paired samples (e.g. one metric of two policies on
    the same campaign seeds). H0: the differences a − b are symmetric about zero.

    Zero differences are dropped (Wilcoxon's convention; scipy's ``zero_method="wilcox"``), and
    n counts the rest. The absolute differences are ranked with ties sharing their average rank.
    For n ≤ 25 without ties the p-value comes from the exact null distribution of W⁺ (subset sums
    of 1..n, by dynamic programming): p = min(1, 2 min(P(W⁺ ≤ w), P(W⁺ ≥ w))). Otherwise the
    normal approximation is used, with mean n(n+1)/4, variance n(n+1)(2n+1)/24 − Σ(t³ − t)/48
    over tie groups of size t, and a continuity correction of ½. With no non-zero difference
    (n = 0) there is no evidence either way: statistic 0 and p = 1.

    Args:
        a, b: (C,) finite paired values, same length C ≥ 1.

    Returns:
        :class:`WilcoxonResult`.
    """
    a = _finite_array("a", a)
    b = _finite_array("b", b)
    if a.ndim != 1 or a.shape[0] < 1:
        raise ValueError(f"a must have shape (C,) with C ≥ 1; got {a.shape}")
    if b.shape != a.shape:
        raise ValueError(f"b must have the shape of a, {a.shape} (one value per paired "
                         f"campaign); got {b.shape}")  # fmt: skip
    difference = a - b
    median = float(np.median(difference))
    d = difference[difference != 0]
    n = int(d.size)
    if n == 0:
        return WilcoxonResult(0.0, 1.0, 0, median)
    ranks, ties = _average_ranks(np.abs(d))
    w_plus = float(np.sum(ranks[d > 0]))
    w_minus = float(np.sum(ranks[d < 0]))
    statistic = min(w_plus, w_minus)
    if n <= _EXACT_MAX_N and np.all(ties == 1):
        pmf = _signed_rank_null(n)
        s = int(round(w_plus))
        p = 2.0 * min(pmf[: s + 1].sum(), pmf[s:].sum())
    else:
        mean = n * (n + 1) / 4.0
        variance = n * (n + 1) * (2 * n + 1) / 24.0 - np.sum(ties**3 - ties) / 48.0
        excess = w_plus - mean
        z = (excess - np.sign(excess) * 0.5) / np.sqrt(variance) if variance > 0 else 0.0
        p = 2.0 * float(norm.sf(abs(z)))
    return WilcoxonResult(statistic, float(min(p, 1.0)), n, median)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control over m tests).

    With p₍₁₎ ≤ … ≤ p₍ₘ₎ sorted, p̃₍ᵢ₎ = max_{j ≤ i} min(1, (m − j + 1) p₍ⱼ₎), returned in the
    input order.

    Args:
        p_values: (m,) p-values in [0, 1].

    Returns:
        (m,) adjusted p-values.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p_values must have shape (m,); got {p.shape}")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"p_values must lie in [0, 1]; got {p}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def compare_policies(metric: dict[str, object]) -> list[dict]:
    """Paired Wilcoxon tests between every pair of policies on one metric.

    Args:
        metric: {policy name: (C,) values}, one value per campaign, campaigns paired (the same
            seeds) across policies; at least two policies.

    Returns:
        One dict per pair (a, b) in the order of ``itertools.combinations`` over the names, with
        keys ``a``, ``b``, ``n_campaigns``, ``median_a``, ``median_b``, ``mean_difference`` and
        ``median_difference`` (of a − b), ``statistic``, ``n`` (non-zero differences),
        ``p_value`` and ``p_holm`` (Holm-corrected over all pairs).
    """
    if not isinstance(metric, dict) or len(metric) < 2:
        got = len(metric) if isinstance(metric, dict) else type(metric).__name__
        raise ValueError(f"metric must be a dict of at least 2 policies; got {got}")
    values = {name: _finite_array(f"metric[{name!r}]", v) for name, v in metric.items()}
    shapes = {name: v.shape for name, v in values.items()}
    if len(set(shapes.values())) != 1 or next(iter(shapes.values())) == () or any(
        len(s) != 1 for s in shapes.values()
    ):
        raise ValueError(f"metric must map each policy to a (C,) array with the same C; got "
                         f"shapes {shapes}")  # fmt: skip
    rows = []
    for name_a, name_b in itertools.combinations(values, 2):
        a, b = values[name_a], values[name_b]
        result = paired_wilcoxon(a, b)
        rows.append({
            "a": name_a,
            "b": name_b,
            "n_campaigns": int(a.size),
            "median_a": float(np.median(a)),
            "median_b": float(np.median(b)),
            "mean_difference": float(np.mean(a - b)),
            "median_difference": result.median_difference,
            "statistic": result.statistic,
            "n": result.n,
            "p_value": result.p_value,
        })  # fmt: skip
    for row, p in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = float(p)
    return rows
