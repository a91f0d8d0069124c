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
        ([[1.0, 2.0]], [[1.0, 2.0]], r"a must have shape \(n,\)"),
        ([], [], r"a must have shape \(n,\) with n ≥ 1"),
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


# ----------------------------------------------------------------------------- Bonferroni


def test_bonferroni_closed_form_and_relation_to_holm():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(stats.bonferroni(p), [0.04, 0.16, 0.12, 1.0])
    assert np.all(stats.holm(p) <= stats.bonferroni(p))  # Holm is never more conservative
    np.testing.assert_array_equal(stats.bonferroni([0.3]), [0.3])
    np.testing.assert_array_equal(stats.bonferroni([0.0, 1.0]), [0.0, 1.0])


@pytest.mark.parametrize(
    "p, match",
    [([0.1, 1.2], r"p_values must lie in \[0, 1\]"), ([[0.1]], r"p_values must have shape \(m,\)"),
     ([], "with m ≥ 1"), ([np.nan], r"p_values must lie in \[0, 1\]")],
)  # fmt: skip
def test_bonferroni_rejects_bad_input(p, match):
    with pytest.raises(ValueError, match=match):
        stats.bonferroni(p)


# ----------------------------------------------------------------------------------- TOST


def test_student_t_matches_scipy():
    for df in (1, 2, 3, 7, 29, 400):
        for t in (-35.0, -4.0, -1.0, -0.2, 0.0, 0.3, 1.7, 6.0, 80.0):
            assert stats._t_sf(t, df) == pytest.approx(scipy.stats.t.sf(t, df), rel=1e-10,
                                                       abs=1e-300)  # fmt: skip
        for q in (0.5, 0.9, 0.95, 0.975, 0.9999):
            assert stats._t_ppf(q, df) == pytest.approx(scipy.stats.t.ppf(q, df), rel=1e-10,
                                                        abs=1e-12)  # fmt: skip
    # closed forms: df = 1 is Cauchy, P(T > 1) = 1/4; df = 2: P(T > t) = ½ (1 − t/√(2 + t²))
    assert stats._t_sf(1.0, 1) == pytest.approx(0.25, rel=1e-13)
    assert stats._t_sf(2.0, 2) == pytest.approx(0.5 * (1 - 2 / np.sqrt(6)), rel=1e-13)
    assert stats._t_ppf(0.95, 1) == pytest.approx(np.tan(np.pi * 0.45), rel=1e-12)


def test_tost_hand_computed_statistics():
    # differences 0.1, −0.1, 0.2, 0.0: mean 0.05, s = √(0.05/3), se = s/2, margin 0.3
    a = np.array([1.1, 0.9, 1.2, 1.0])
    b = np.ones(4)
    result = stats.tost_paired(a, b, 0.3)
    se = np.sqrt(0.05 / 3) / 2
    assert result.mean_difference == pytest.approx(0.05)
    assert result.df == 3
    assert result.t_lower == pytest.approx(0.35 / se)
    assert result.t_upper == pytest.approx(-0.25 / se)

    def sf3(t):  # df = 3: P(T > t) = ½ − (1/π)[atan(t/√3) + √3 t/(3 + t²)]
        return 0.5 - (np.arctan(t / np.sqrt(3)) + np.sqrt(3) * t / (3 + t * t)) / np.pi

    assert result.p_lower == pytest.approx(sf3(0.35 / se), rel=1e-9)
    assert result.p_upper == pytest.approx(sf3(0.25 / se), rel=1e-9)
    assert result.p_value == max(result.p_lower, result.p_upper)
    half = scipy.stats.t.ppf(0.95, 3) * se
    assert (result.ci_low, result.ci_high) == pytest.approx((0.05 - half, 0.05 + half))
    assert result.equivalent == (result.p_value < 0.05)
    assert result.equivalent == (-0.3 < result.ci_low and result.ci_high < 0.3)


def test_tost_matches_scipy_one_sided_t_tests():
    rng = np.random.default_rng(0)
    for n, shift in ((5, 0.0), (12, 0.05), (30, -0.2), (200, 0.01)):
        a = rng.normal(0.3, 0.1, n)
        b = a - shift + rng.normal(0, 0.05, n)
        result = stats.tost_paired(a, b, 0.1)
        d = a - b
        greater = scipy.stats.ttest_1samp(d, -0.1, alternative="greater")
        less = scipy.stats.ttest_1samp(d, 0.1, alternative="less")
        assert result.t_lower == pytest.approx(greater.statistic, rel=1e-12)
        assert result.t_upper == pytest.approx(less.statistic, rel=1e-12)
        assert result.p_lower == pytest.approx(greater.pvalue, rel=1e-9, abs=1e-300)
        assert result.p_upper == pytest.approx(less.pvalue, rel=1e-9, abs=1e-300)
        low, high = scipy.stats.t.interval(0.9, n - 1, loc=d.mean(), scale=scipy.stats.sem(d))
        assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)


def test_tost_declares_equivalence_only_for_equivalent_samples():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.1, 0.3, 30)  # e.g. DEC-AUC of 30 seeds
    close = a + rng.normal(0, 0.005, 30)
    same = stats.tost_paired(a, close, 0.02)
    assert same.equivalent and same.p_value < 1e-6
    shifted = stats.tost_paired(a, a + 0.05 + rng.normal(0, 0.005, 30), 0.02)
    assert not shifted.equivalent and shifted.p_value > 0.5
    assert shifted.ci_high < -0.02  # clearly outside the margin
    # symmetric in the sign of the difference; a stricter alpha widens the interval
    flipped = stats.tost_paired(close, a, 0.02)
    assert flipped.p_value == pytest.approx(same.p_value)
    assert flipped.mean_difference == pytest.approx(-same.mean_difference)
    strict = stats.tost_paired(a, close, 0.02, alpha=0.005)
    assert strict.ci_low < same.ci_low and strict.ci_high > same.ci_high


def test_tost_with_constant_differences():
    # exactly representable differences, so the sample standard deviation is exactly 0
    inside = stats.tost_paired([1.0, 2.0, 3.0], [0.75, 1.75, 2.75], 0.3)
    assert inside.equivalent and inside.p_value == 0.0
    assert inside.ci_low == inside.ci_high == 0.25
    outside = stats.tost_paired([1.0, 2.0, 3.0], [0.5, 1.5, 2.5], 0.3)
    assert not outside.equivalent and outside.p_value == 1.0


@pytest.mark.parametrize(
    "a, b, kwargs, match",
    [
        ([1.0], [1.0], {}, r"a must have shape \(n,\) with n ≥ 2"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], {}, "b must have the shape of a"),
        ([1.0, np.inf], [1.0, 2.0], {}, "a must be finite"),
        ([1.0, 2.0], [np.nan, 2.0], {}, "b must be finite"),
        ([1.0, 2.0], [1.0, 2.0], {"margin": 0.0}, "margin must be > 0 and finite; got 0.0"),
        ([1.0, 2.0], [1.0, 2.0], {"margin": np.inf}, "margin must be > 0 and finite"),
        ([1.0, 2.0], [1.0, 2.0], {"alpha": 0.5}, r"alpha must lie in \(0, 0.5\); got 0.5"),
    ],
)
def test_tost_rejects_bad_input(a, b, kwargs, match):
    kwargs = {"margin": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        stats.tost_paired(a, b, **kwargs)
