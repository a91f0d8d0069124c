"""Bootstrap intervals, paired Wilcoxon tests and policy comparisons (stemjax.stats)."""

import numpy as np
import pytest
import scipy.stats

from stemjax import stats

# ------------------------------------------------------------------------------ bootstrap


def test_bootstrap_interval_covers_the_true_mean_about_95_percent():
    """400 independent normal samples of 30 campaigns, done at once as the columns of (30, 400)."""
    rng = np.random.default_rng(0)
    values = rng.normal(2.0, 3.0, size=(30, 400))
    mean, low, high = stats.bootstrap_mean_ci(values, n_resamples=1000, seed=1)
    assert mean.shape == low.shape == high.shape == (400,)
    np.testing.assert_allclose(mean, values.mean(0))
    assert np.all(low <= mean) and np.all(mean <= high)
    coverage = np.mean((low <= 2.0) & (2.0 <= high))
    assert 0.89 <= coverage <= 0.99  # percentile bootstrap at n = 30: about 0.93
    # the width matches ±1.96 s/√n on average
    width = np.mean(high - low)
    assert width == pytest.approx(2 * 1.96 * 3.0 / np.sqrt(30), rel=0.1)


def test_bootstrap_interval_shrinks_with_more_campaigns_and_level():
    rng = np.random.default_rng(1)
    widths = []
    for n in (10, 40, 160):
        _, low, high = stats.bootstrap_mean_ci(rng.normal(size=(n, 50)), n_resamples=500)
        widths.append(np.mean(high - low))
    assert widths[0] > 1.6 * widths[1] > 1.6**2 * widths[2]
    values = rng.normal(size=40)
    _, lo90, hi90 = stats.bootstrap_mean_ci(values, level=0.9)
    _, lo99, hi99 = stats.bootstrap_mean_ci(values, level=0.99)
    assert lo99 < lo90 < hi90 < hi99


def test_bootstrap_axis_seed_and_scalar_shapes():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(5, 12, 3))
    a = stats.bootstrap_mean_ci(values, axis=1, seed=4)
    b = stats.bootstrap_mean_ci(np.moveaxis(values, 1, 0), axis=0, seed=4)
    for x, y in zip(a, b):
        assert x.shape == (5, 3)
        np.testing.assert_array_equal(x, y)
    c = stats.bootstrap_mean_ci(values, axis=1, seed=5)
    assert not np.array_equal(a[1], c[1])
    mean, low, high = stats.bootstrap_mean_ci([1.0, 2.0, 3.0, 4.0])
    assert mean.shape == () and float(mean) == 2.5 and 1.0 <= low < 2.5 < high <= 4.0
    constant = stats.bootstrap_mean_ci(np.full((6, 2), 0.5))
    for x in constant:
        np.testing.assert_array_equal(x, 0.5)


@pytest.mark.parametrize(
    "values, kwargs, match",
    [
        ([1.0], {}, "at least 2 campaigns"),
        (3.0, {}, "campaign axis"),
        ([1.0, np.nan], {}, "values must be finite"),
        (np.zeros((3, 2)), {"axis": 2}, r"axis must be in \[-2, 1\]"),
        ([1.0, 2.0], {"level": 1.0}, r"level must lie in \(0, 1\)"),
        ([1.0, 2.0], {"n_resamples": 0}, "n_resamples must be an integer >= 1"),
    ],
)
def test_bootstrap_rejects_bad_input(values, kwargs, match):
    with pytest.raises(ValueError, match=match):
        stats.bootstrap_mean_ci(values, **kwargs)


# ------------------------------------------------------------------------------- Wilcoxon


def _scipy(a, b, method):
    return scipy.stats.wilcoxon(a, b, zero_method="wilcox", correction=True, method=method)


@pytest.mark.parametrize("n", [1, 2, 5, 9, 16, 25])
def test_wilcoxon_exact_regime_matches_scipy(n):
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.4, 1.5):
        a = rng.normal(size=n) + shift
        b = rng.normal(size=n)
        ours = stats.paired_wilcoxon(a, b)
        ref = _scipy(a, b, "exact")
        assert ours.n == n
        assert ours.statistic == pytest.approx(ref.statistic)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)
        assert ours.median_difference == pytest.approx(np.median(a - b))


def test_wilcoxon_exact_extremes():
    # all 6 differences positive: W⁻ = 0, p = 2 / 2⁶
    result = stats.paired_wilcoxon(np.arange(1.0, 7.0), np.zeros(6))
    assert result.statistic == 0.0 and result.p_value == pytest.approx(2 / 64)
    # one pair: p = 1
    assert stats.paired_wilcoxon([2.0], [1.0]).p_value == 1.0


@pytest.mark.parametrize("n", [26, 40, 200])
def test_wilcoxon_normal_regime_matches_scipy(n):
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.3):
        a = rng.normal(size=n) + shift
        b = rng.normal(size=n)
        ours = stats.paired_wilcoxon(a, b)
        ref = _scipy(a, b, "asymptotic")
        assert ours.statistic == pytest.approx(ref.statistic)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.parametrize("n", [8, 30, 120])
def test_wilcoxon_ties_and_zeros_match_scipy_normal_approximation(n):
    """Coverage-like values on a grid of 1/20: many tied |differences| and zero differences."""
    rng = np.random.default_rng(n)
    a = rng.integers(8, 16, n) / 20
    b = rng.integers(7, 15, n) / 20
    d = a - b
    assert np.any(d == 0) and len(np.unique(np.abs(d[d != 0]))) < np.sum(d != 0)
    ours = stats.paired_wilcoxon(a, b)
    ref = _scipy(a, b, "asymptotic")
    assert ours.n == np.sum(d != 0)
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_wilcoxon_zeros_only_are_dropped_before_the_exact_test():
    rng = np.random.default_rng(3)
    a = rng.normal(size=12)
    b = a.copy()
    b[:8] += rng.normal(size=8)  # 8 non-zero differences, 4 zeros
    ours = stats.paired_wilcoxon(a, b)
    ref = _scipy(a[:8], b[:8], "exact")
    assert ours.n == 8
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)


def test_wilcoxon_identical_samples_give_p_one():
    result = stats.paired_wilcoxon([0.5, 0.7], [0.5, 0.7])
    assert result == stats.WilcoxonResult(0.0, 1.0, 0, 0.0)


def test_wilcoxon_is_symmetric_in_its_arguments():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=20), rng.normal(size=20)
    ab, ba = stats.paired_wilcoxon(a, b), stats.paired_wilcoxon(b, a)
    assert ab.p_value == ba.p_value and ab.statistic == ba.statistic
    assert ab.median_difference == -ba.median_difference


@pytest.mark.parametrize(
    "a, b, match",
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], "b must have the shape of a"),
        ([[1.0, 2.0]], [[1.0, 2.0]], r"a must have shape \(C,\)"),
        ([], [], r"a must have shape \(C,\) with C ≥ 1"),
        ([1.0, np.inf], [1.0, 2.0], "a must be finite"),
    ],
)
def test_wilcoxon_rejects_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        stats.paired_wilcoxon(a, b)


# -------------------------------------------------------------------- Holm and comparisons


def test_holm_closed_form():
    # sorted p: 0.01, 0.02, 0.04, 0.5 → ×4, ×3, ×2, ×1 → 0.04, 0.06, 0.08, 0.5 (monotone)
    np.testing.assert_allclose(stats.holm([0.04, 0.5, 0.01, 0.02]), [0.08, 0.5, 0.04, 0.06])
    np.testing.assert_allclose(stats.holm([0.03, 0.02]), [0.04, 0.04])  # monotone step-down
    np.testing.assert_allclose(stats.holm([0.6, 0.9]), [1.0, 1.0])
    with pytest.raises(ValueError, match=r"p_values must lie in \[0, 1\]"):
        stats.holm([0.5, 1.2])


def test_compare_policies_rows():
    rng = np.random.default_rng(5)
    base = rng.normal(size=30)
    metric = {"ei": base, "mu": base + 0.8 + 0.1 * rng.normal(size=30), "beacon": base + 0.01}
    rows = stats.compare_policies(metric)
    assert [(r["a"], r["b"]) for r in rows] == [("ei", "mu"), ("ei", "beacon"), ("mu", "beacon")]
    for row in rows:
        a, b = metric[row["a"]], metric[row["b"]]
        ref = _scipy(a, b, "asymptotic" if row["n"] > 25 else "exact")
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert row["median_a"] == pytest.approx(np.median(a))
        assert row["mean_difference"] == pytest.approx(np.mean(a - b))
        assert row["median_difference"] == pytest.approx(np.median(a - b))
        assert row["n_campaigns"] == 30
    np.testing.assert_allclose([r["p_holm"] for r in rows],
                               stats.holm([r["p_value"] for r in rows]))  # fmt: skip
    assert rows[0]["p_holm"] < 1e-4 and rows[0]["mean_difference"] < 0


@pytest.mark.parametrize(
    "metric, match",
    [
        ({"a": [1.0, 2.0]}, "at least 2 policies"),
        ([1.0, 2.0], "dict of at least 2 policies"),
        ({"a": [1.0, 2.0], "b": [1.0, 2.0, 3.0]}, "same C"),
        ({"a": 1.0, "b": 2.0}, "same C"),
        ({"a": [1.0, np.nan], "b": [1.0, 2.0]}, r"metric\['a'\] must be finite"),
    ],
)
def test_compare_policies_rejects_bad_input(metric, match):
    with pytest.raises(ValueError, match=match):
        stats.compare_policies(metric)
