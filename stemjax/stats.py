"""Statistics across campaigns: bootstrap intervals, paired Wilcoxon tests, policy comparisons.

These summarise finished sweeps for reports, so they are plain NumPy on concrete arrays (JAX
arrays are accepted and converted). Each campaign is one independent replicate; two policies run
on the same campaign seeds form paired samples.

- :func:`bootstrap_mean_ci`: the mean over campaigns with a percentile-bootstrap interval
  (Efron & Tibshirani 1993, ch. 13), for scalars or whole learning curves at once.
- :func:`paired_wilcoxon`: the two-sided Wilcoxon signed-rank test (Wilcoxon 1945) on paired
  differences.
- :func:`compare_policies`: every pair of policies, with Holm's step-down correction
  (Holm 1979) over the pairs (:func:`holm`); :func:`bonferroni` for the simpler correction.
- :func:`tost_paired`: two one-sided paired t-tests of equivalence (Schuirmann 1987), to claim
  that two policies are equivalent within a margin rather than merely not distinguishable.
"""

from __future__ import annotations

import itertools
import math
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


def _paired(a, b, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Finite (n,) arrays a and b of equal length n ≥ ``minimum`` (paired values)."""
    a = _finite_array("a", a)
    b = _finite_array("b", b)
    if a.ndim != 1 or a.shape[0] < minimum:
        raise ValueError(f"a must have shape (n,) with n ≥ {minimum} paired values; got {a.shape}")
    if b.shape != a.shape:
        raise ValueError(f"b must have the shape of a, {a.shape} (one value per pair); got "
                         f"{b.shape}")  # fmt: skip
    return a, b


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
    a, b = _paired(a, b, 1)
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


def bonferroni(p_values) -> np.ndarray:
    """Bonferroni-adjusted p-values: p̃_i = min(1, m p_i) over m tests (Bonferroni 1936; Dunn
    1961). Rejecting where p̃_i ≤ α keeps the family-wise error rate ≤ α under any dependence;
    :func:`holm` is uniformly more powerful with the same guarantee.

    Args:
        p_values: (m,) p-values in [0, 1], m ≥ 1.

    Returns:
        (m,) adjusted p-values, in the input order.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or p.size < 1:
        raise ValueError(f"p_values must have shape (m,) with m ≥ 1; got {p.shape}")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"p_values must lie in [0, 1]; got {p}")
    return np.minimum(1.0, p.size * p)


# ------------------------------------------------------------------- Student's t distribution


def _betainc_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz; Press et
    al., Numerical Recipes, 3rd ed., §6.4), converging fast for x < (a + 1)/(a + b + 2)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise RuntimeError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, "
                       f"x={x})")  # fmt: skip


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, with y = 1 − x given exactly."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
                 + b * math.log(y))  # fmt: skip
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betainc_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betainc_fraction(b, a, y) / b


def _t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom: ½ I_{df/(df+t²)}(df/2, ½) for t ≥ 0
    (Abramowitz & Stegun 26.7.1), computed in float64 from the tail so small p keep precision."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    t2 = t * t
    tail = 0.5 * _betainc(0.5 * df, 0.5, df / (df + t2), t2 / (df + t2))
    return tail if t >= 0 else 1.0 - tail


def _t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t, q in [½, 1): bisection of the survival function."""
    target = 1.0 - q
    low, high = 0.0, 1.0
    while _t_sf(high, df) > target:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if _t_sf(middle, df) > target:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


# ---------------------------------------------------------------------------- equivalence


class TOSTResult(NamedTuple):
    """Result of :func:`tost_paired`.

    Attributes:
        mean_difference: mean of the paired differences a − b.
        t_lower: (mean + margin)/se, the statistic of H0₁: mean ≤ −margin.
        t_upper: (mean − margin)/se, the statistic of H0₂: mean ≥ +margin.
        df: degrees of freedom, n − 1.
        p_lower: one-sided p-value of H0₁, P(T ≥ t_lower).
        p_upper: one-sided p-value of H0₂, P(T ≤ t_upper).
        p_value: max(p_lower, p_upper), the p-value of the equivalence test.
        ci_low, ci_high: the (1 − 2α) confidence interval of the mean difference (90 % for
            α = 0.05).
        equivalent: True when p_value < alpha, i.e. the interval lies inside (−margin, margin).
    """

    mean_difference: float
    t_lower: float
    t_upper: float
    df: int
    p_lower: float
    p_upper: float
    p_value: float
    ci_low: float
    ci_high: float
    equivalent: bool


def tost_paired(a, b, margin: float, *, alpha: float = 0.05) -> TOSTResult:
    """Two one-sided paired t-tests of equivalence (TOST; Schuirmann 1987).

    With the n paired differences d = a − b, their mean d̄, sample standard deviation s
    (n − 1 in the denominator) and se = s/√n, equivalence within ±margin is declared when both
    H0₁: μ_d ≤ −margin and H0₂: μ_d ≥ +margin are rejected at level α:
    t₁ = (d̄ + margin)/se, p₁ = P(T_{n−1} ≥ t₁); t₂ = (d̄ − margin)/se, p₂ = P(T_{n−1} ≤ t₂);
    p = max(p₁, p₂), equivalent ⇔ p < α ⇔ the (1 − 2α) interval d̄ ± t_{1−α, n−1} se lies
    inside (−margin, margin). Student's t distribution is evaluated in float64 through the
    regularized incomplete beta function (continued fraction), without scipy; the p-values
    match ``scipy.stats.ttest_1samp`` with ``alternative="greater"``/``"less"`` to ~1e-10
    relative.

    If all differences are equal (se = 0) the test is decided by d̄ alone: p₁ = 0 if
    d̄ > −margin else 1, p₂ = 0 if d̄ < margin else 1, and the interval is [d̄, d̄].

    Args:
        a, b: (n,) finite paired values (e.g. DEC-AUC of two agents on the same n seeds), n ≥ 2.
        margin: equivalence margin Δ > 0, in the units of a and b.
        alpha: level of each one-sided test, in (0, 0.5).

    Returns:
        :class:`TOSTResult`.
    """
    a, b = _paired(a, b, 2)
    margin = float(margin)
    if not (np.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be > 0 and finite; got {margin!r}")
    alpha = float(alpha)
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5); got {alpha!r}")
    d = a - b
    n = d.size
    df = n - 1
    mean = float(np.mean(d))
    se = float(np.std(d, ddof=1)) / math.sqrt(n)
    if se > 0:
        t_lower, t_upper = (mean + margin) / se, (mean - margin) / se
        p_lower, p_upper = _t_sf(t_lower, df), _t_sf(-t_upper, df)
        half = _t_ppf(1.0 - alpha, df) * se
    else:
        t_lower = math.inf if mean > -margin else -math.inf
        t_upper = -math.inf if mean < margin else math.inf
        p_lower = 0.0 if mean > -margin else 1.0
        p_upper = 0.0 if mean < margin else 1.0
        half = 0.0
    p = max(p_lower, p_upper)
    return TOSTResult(mean, t_lower, t_upper, df, p_lower, p_upper, p, mean - half, mean + half,
                      bool(p < alpha))  # fmt: skip
