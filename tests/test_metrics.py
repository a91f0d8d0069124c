"""Coverage and learning-curve metrics (paper 003, S1 and S2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax import metrics
from stemjax.acquisition import occupied_bins, target_coverage


def _same_partition(a, b) -> bool:
    """True when the labelings a and b group the points identically (up to renaming)."""
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def _blobs(seed=0, spread=0.05):
    """120 points in 4-D around the 4 unit vectors × 10 (30 each), shuffled. Tests share this
    shape, k = 4 and the default iterations, so k-means compiles once."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(4), 30)
    points = 10.0 * np.eye(4)[truth] + spread * rng.normal(size=(120, 4))
    perm = rng.permutation(120)
    return points[perm].astype(np.float32), truth[perm]


# ---------------------------------------------------------------------------------- k-means


def test_kmeans_recovers_separated_blobs_and_their_centres():
    points, truth = _blobs()
    for seed in range(5):
        labels, centroids = metrics.kmeans(jax.random.key(seed), points, 4)
        assert labels.dtype == jnp.int32 and labels.shape == truth.shape
        assert _same_partition(labels, truth)
        for c in range(4):
            np.testing.assert_allclose(centroids[c], points[labels == c].mean(0), atol=1e-4)


def test_kmeans_same_key_same_result_jit_agrees_and_lloyd_converges():
    points, _ = _blobs(seed=1, spread=4.0)  # overlapping: seeding matters
    a = metrics.kmeans(jax.random.key(3), points, 4)
    b = metrics.kmeans(jax.random.key(3), points, 4)
    jitted = jax.jit(metrics.kmeans, static_argnames=("k", "iterations"))
    c = jitted(jax.random.key(3), points, 4)
    for x, y in ((a, b), (a, c)):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_allclose(x[1], y[1], rtol=1e-6)
    # a fixed point of Lloyd's iteration: each point is nearest to its own centroid
    d2 = ((points[:, None, :] - np.asarray(a[1])[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(a[0], d2.argmin(1))


def test_kmeans_with_fewer_distinct_points_than_k():
    points = np.zeros((120, 4), np.float32)
    points[60:] = 5.0
    labels, _ = metrics.kmeans(jax.random.key(0), points, 4)
    assert _same_partition(labels, np.repeat([0, 1], 60))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"points": np.zeros((5, 2)), "k": 0}, "k must be an integer >= 1"),
        ({"points": np.zeros((5, 2)), "k": 6}, r"k must be an integer in \[1, N=5\]"),
        ({"points": np.zeros(5), "k": 2}, r"points must have shape \(N, d\)"),
        ({"points": np.array([[0.0], [np.nan]]), "k": 1}, "points must be finite"),
        ({"points": np.zeros((5, 2)), "k": 2, "iterations": -1}, "iterations must be"),
    ],
)
def test_kmeans_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.kmeans(jax.random.key(0), **kwargs)


# ---------------------------------------------------------------------------- label spaces


def test_patch_labels_ignore_brightness_and_contrast():
    rng = np.random.default_rng(0)
    families = rng.normal(size=(4, 8, 8))
    which = np.repeat(np.arange(4), 30)
    gain = rng.uniform(0.2, 5.0, 120)[:, None, None]
    offset = rng.uniform(-3, 3, 120)[:, None, None]
    patches = families[which] * gain + offset
    for seed in range(3):
        labels = metrics.patch_space_labels(jax.random.key(seed), patches, 4, projection_dim=4)
        assert _same_partition(labels, which)


def test_normalize_patches_zscores_and_maps_flat_patches_to_zero():
    patches = np.stack([np.full((4, 4), 0.1), np.arange(16.0).reshape(4, 4), np.zeros((4, 4))])
    z = np.asarray(metrics.normalize_patches(patches.astype(np.float32)))
    np.testing.assert_array_equal(z[0], 0.0)
    np.testing.assert_array_equal(z[2], 0.0)
    np.testing.assert_allclose([z[1].mean(), z[1].std()], [0.0, 1.0], atol=1e-6)


def test_patch_labels_accept_vectors_and_are_reproducible():
    points = np.random.default_rng(3).normal(size=(120, 64))
    a = metrics.patch_space_labels(jax.random.key(0), points, 4, projection_dim=4)
    b = metrics.patch_space_labels(jax.random.key(0), points.reshape(120, 8, 8), 4,
                                   projection_dim=4)  # fmt: skip
    np.testing.assert_array_equal(a, b)
    assert a.shape == (120,) and set(np.asarray(a).tolist()) == {0, 1, 2, 3}
    assert float(metrics.label_coverage(a, np.ones(120, bool), 4)) == 1.0
    with pytest.raises(ValueError, match="projection_dim must be an integer >= 1"):
        metrics.patch_space_labels(jax.random.key(0), points, 3, projection_dim=0)


def test_feature_labels_separate_two_patch_families():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:8, :8]
    disk = ((yy - 3.5) ** 2 + (xx - 3.5) ** 2 < 6).astype(float)
    stripes = (np.sin(xx * 1.6) > 0).astype(float)
    which = np.repeat([0, 1], 60)
    patches = np.stack([disk, stripes])[which] + 0.1 * rng.normal(size=(120, 8, 8))
    labels = metrics.feature_space_labels(jax.random.key(0), patches, 2, steps=300)
    assert _same_partition(labels, which)
    with pytest.raises(ValueError, match=r"patches must have shape \(N, h, w\)"):
        metrics.feature_space_labels(jax.random.key(0), patches.reshape(120, -1), 2)


def test_target_labels_equal_width_bins_with_max_in_last():
    targets = np.array([0.0, 0.24, 0.25, 0.5, 0.99, 1.0], np.float32)
    labels = metrics.target_space_labels(targets, 4)
    np.testing.assert_array_equal(labels, [0, 0, 1, 2, 3, 3])
    labels = metrics.target_space_labels(targets * 7 - 3, 1)
    np.testing.assert_array_equal(labels, 0)


def test_target_labels_constant_targets_form_one_bin():
    labels = metrics.target_space_labels(np.full(5, 2.5), 10)
    np.testing.assert_array_equal(labels, 0)
    visited = np.array([False, False, True, False, False])
    assert float(metrics.label_coverage(labels, visited, 10)) == 1.0


def test_target_coverage_agrees_with_acquisition_coverage():
    rng = np.random.default_rng(0)
    targets = rng.gamma(2.0, size=300).astype(np.float32)  # skewed: some bins unreachable
    n_bins = 25
    labels = metrics.target_space_labels(targets, n_bins)
    low, high = float(targets.min()), float(targets.max())
    reachable = occupied_bins(targets, low=low, high=high, n_bins=n_bins)
    assert int(reachable.sum()) < n_bins
    for seed in range(5):
        visited = np.random.default_rng(seed).random(300) < 0.05
        ours = metrics.label_coverage(labels, visited, n_bins)
        theirs = target_coverage(targets, low=low, high=high, n_bins=n_bins, mask=visited,
                                 reachable=reachable)  # fmt: skip
        assert float(ours) == pytest.approx(float(theirs))


@pytest.mark.parametrize(
    "targets, n_bins, match",
    [
        (np.array([0.0, np.nan]), 3, "targets must be finite"),
        (np.zeros((2, 2)), 3, r"targets must have shape \(N,\)"),
        (np.zeros(0), 3, r"targets must have shape \(N,\)"),
        (np.zeros(3), 0, "n_bins must be an integer >= 1"),
    ],
)
def test_target_labels_reject_bad_input(targets, n_bins, match):
    with pytest.raises(ValueError, match=match):
        metrics.target_space_labels(targets, n_bins)


# -------------------------------------------------------------------------------- coverage


def test_label_coverage_closed_forms(dtype):
    labels = np.array([0, 0, 2, 2, 4, 4, 4])  # 3 labels present of 5 possible
    visited = np.array([1, 0, 0, 1, 0, 0, 0], bool)  # hits labels 0 and 2
    c = metrics.label_coverage(labels, visited, 5)
    assert c.dtype == dtype and float(c) == pytest.approx(2 / 3)
    assert float(metrics.label_coverage(labels, np.zeros(7, bool), 5)) == 0.0
    assert float(metrics.label_coverage(labels, np.ones(7, bool), 5)) == 1.0
    # −1 leaves a candidate out: visiting it counts for nothing, and label 4 is no longer present
    labels_out = np.array([0, 0, 2, 2, -1, -1, -1])
    assert float(metrics.label_coverage(labels_out, ~visited, 5)) == pytest.approx(1.0)
    assert float(metrics.label_coverage(labels_out, np.eye(7, dtype=bool)[5], 5)) == 0.0
    assert float(metrics.label_coverage(np.full(3, -1), np.ones(3, bool), 2)) == 0.0


def test_label_coverage_is_invariant_to_candidate_order():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, 50)
    visited = rng.random(50) < 0.2
    base = float(metrics.label_coverage(labels, visited, 10))
    for _ in range(5):
        perm = rng.permutation(50)
        assert float(metrics.label_coverage(labels[perm], visited[perm], 10)) == base


def test_label_coverage_vmap_and_scan_equal_a_loop():
    rng = np.random.default_rng(1)
    labels = jnp.asarray(rng.integers(0, 6, 40))
    visited = jnp.asarray(rng.random((16, 40)) < 0.1)
    batched = jax.vmap(lambda v: metrics.label_coverage(labels, v, 6))(visited)
    loop = [float(metrics.label_coverage(labels, v, 6)) for v in visited]
    np.testing.assert_allclose(batched, loop)

    order = jnp.asarray(rng.permutation(40)[:12])

    def step(visited, index):
        visited = visited.at[index].set(True)
        return visited, metrics.label_coverage(labels, visited, 6)

    _, scanned = jax.lax.scan(step, jnp.zeros(40, bool), order)
    np.testing.assert_allclose(scanned, metrics.coverage_curve(labels, order, 6))


def test_coverage_curve_matches_stepwise_coverage_with_seeds_and_padding():
    rng = np.random.default_rng(2)
    labels = rng.integers(-1, 7, 60)
    order = np.concatenate([rng.choice(60, 15, replace=False), [3, 3], [-1, -1]])
    initial = np.zeros(60, bool)
    initial[rng.choice(60, 3, replace=False)] = True
    curve = np.asarray(metrics.coverage_curve(labels, order, 7, initial=initial))
    visited = initial.copy()
    for t, index in enumerate(order):
        if index >= 0:
            visited[index] = True
        assert curve[t] == pytest.approx(float(metrics.label_coverage(labels, visited, 7)))
    assert np.all(np.diff(curve) >= 0)


@pytest.mark.parametrize(
    "labels, visited, n_labels, match",
    [
        (np.array([0, 5]), np.ones(2, bool), 5, r"labels must lie in \[-1, 4\]"),
        (np.array([0, -2]), np.ones(2, bool), 5, r"labels must lie in \[-1, 4\]"),
        (np.array([0.0, 1.0]), np.ones(2, bool), 5, "labels must be integers"),
        (np.array([0, 1]), np.ones(3, bool), 5, "visited must have the shape of labels"),
        (np.array([0, 1]), np.ones(2, bool), 0, "n_labels must be an integer >= 1"),
    ],
)
def test_label_coverage_rejects_bad_input(labels, visited, n_labels, match):
    with pytest.raises(ValueError, match=match):
        metrics.label_coverage(labels, visited, n_labels)


# ------------------------------------------------------------------------- learning curves


def test_mae_mean_and_uncertainty_closed_forms(dtype):
    prediction = jnp.asarray([1.0, 2.0, 3.0, 4.0], dtype)
    targets = jnp.asarray([1.5, 2.0, 2.0, 8.0], dtype)
    mask = np.array([True, True, True, False])
    assert float(metrics.mae(prediction, targets)) == pytest.approx((0.5 + 0 + 1 + 4) / 4)
    assert float(metrics.mae(prediction, targets, mask)) == pytest.approx(0.5)
    assert metrics.mae(prediction, targets).dtype == dtype
    assert float(metrics.surrogate_mean(prediction, mask)) == pytest.approx(2.0)
    variance = jnp.asarray([1.0, 4.0, 9.0, -1e-9], dtype)
    assert float(metrics.surrogate_uncertainty(variance)) == pytest.approx(6 / 4)
    assert np.isnan(float(metrics.mae(prediction, targets, np.zeros(4, bool))))
    jitted = jax.jit(jax.vmap(metrics.mae, in_axes=(0, None, None)))
    np.testing.assert_allclose(jitted(jnp.stack([prediction, targets]), targets, mask), [0.5, 0])


def test_mae_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="prediction must have the shape of targets"):
        metrics.mae(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="mask must have the shape of prediction"):
        metrics.mae(np.zeros(3), np.zeros(3), np.ones(4, bool))


# ----------------------------------------------------------------- predictive uncertainty


def test_predictive_entropy_closed_forms(dtype):
    probs = jnp.asarray([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0],
                         [0.0, 0.0, 1.0]], dtype)  # fmt: skip
    h = metrics.predictive_entropy(probs)
    assert h.dtype == dtype and h.shape == (4,)
    np.testing.assert_allclose(h, [0.0, np.log(3), np.log(2), 0.0], rtol=1e-6)
    assert float(h[0]) == 0.0 and not np.signbit(h[0]) and not np.signbit(h[3])
    # a batch axis, and a finite (zero) gradient at the one-hot row
    batched = metrics.predictive_entropy(jnp.stack([probs, probs[::-1]]))
    np.testing.assert_allclose(batched[1], h[::-1], rtol=1e-6)
    grad = jax.grad(lambda p: metrics.predictive_entropy(p).sum())(probs)
    assert np.all(np.isfinite(grad))
    # binary entropy of p = 0.1: −0.1 ln 0.1 − 0.9 ln 0.9
    hb = metrics.predictive_entropy(jnp.asarray([0.1, 0.9], dtype))
    assert float(hb) == pytest.approx(-0.1 * np.log(0.1) - 0.9 * np.log(0.9), rel=1e-6)


def test_mutual_information_equals_entropy_difference_and_is_zero_for_agreement(dtype):
    rng = np.random.default_rng(0)
    members = rng.dirichlet(np.ones(4), size=(6, 5))  # (S=6, N=5, k=4)
    mi = metrics.mutual_information(jnp.asarray(members, dtype))
    mean = members.mean(0)

    def h(p):
        return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), -1)

    expected = h(mean) - h(members).mean(0)
    assert mi.dtype == dtype and mi.shape == (5,)
    np.testing.assert_allclose(mi, expected, rtol=1e-5)
    # identical members: no epistemic part (only the rounding of their mean, squared, remains)
    same = jnp.asarray(np.broadcast_to(members[0], (6, 5, 4)), dtype)
    assert np.all(np.asarray(metrics.mutual_information(same)) < 1e-12)
    # two confident members that disagree completely: I = log 2
    split = jnp.asarray([[[1.0, 0.0]], [[0.0, 1.0]]], dtype)
    assert float(metrics.mutual_information(split)[0]) == pytest.approx(np.log(2), rel=1e-6)


def test_mutual_information_float32_keeps_small_disagreements():
    """Members 1e-3 apart: I ≈ 1e-7 nats, far below float32 rounding of H ≈ 1; the KL form keeps
    it to 1e-5 relative, where the difference of entropies would have no correct digit."""
    rng = np.random.default_rng(1)
    base = rng.dirichlet(np.ones(5), size=20)
    noise = 1e-3 * rng.normal(size=(8, 20, 5))
    members = base * np.exp(noise)
    members /= members.sum(-1, keepdims=True)
    members32 = members.astype(np.float32)
    with jax.enable_x64(True):
        reference = np.asarray(metrics.mutual_information(members32.astype(np.float64)))
    ours = np.asarray(metrics.mutual_information(members32))
    assert np.all(reference > 0) and np.all(reference < 1e-5)
    np.testing.assert_allclose(ours, reference, rtol=1e-5)


@pytest.mark.parametrize(
    "probs, match",
    [
        (np.array([0.5, 0.6]), r"probs must sum to 1 over its last axis .* off by up to 0.1"),
        (np.array([1.2, -0.2]), r"probs must be probabilities in \[0, 1\]; got 2 value"),
        (np.array([np.nan, 1.0]), r"probs must be probabilities in \[0, 1\]; got 1 value"),
        (np.zeros((2, 0)), r"probs must have shape \(\.\.\., k\) with k ≥ 1 classes"),
    ],
)
def test_predictive_entropy_rejects_bad_input(probs, match):
    with pytest.raises(ValueError, match=match):
        metrics.predictive_entropy(probs)


def test_mutual_information_needs_a_member_axis():
    with pytest.raises(ValueError, match=r"member_probs must have shape \(S, \.\.\., k\)"):
        metrics.mutual_information(np.array([0.5, 0.5]))


# ------------------------------------------------------------------- agreement and scores

_LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
_PREDICTED = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2, 0])


def test_confusion_matrix_accuracy_and_macro_f1_by_hand(dtype):
    cm = metrics.confusion_matrix(_LABELS, _PREDICTED, 4)
    expected = np.array([[3, 1, 0, 0], [0, 1, 1, 0], [1, 0, 3, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == jnp.int32
    acc = metrics.accuracy(_LABELS, _PREDICTED)
    assert acc.dtype == dtype and float(acc) == pytest.approx(0.7)
    # F1 = 2TP/(2TP + FP + FN): class 0: 6/8, class 1: 2/4, class 2: 6/8; class 3 absent
    f1 = metrics.macro_f1(_LABELS, _PREDICTED, 4)
    assert f1.dtype == dtype and float(f1) == pytest.approx((0.75 + 0.5 + 0.75) / 3)
    # a mask drops items: the last three
    keep = np.arange(10) < 7
    np.testing.assert_array_equal(
        metrics.confusion_matrix(_LABELS, _PREDICTED, 3, keep),
        [[2, 1, 0], [0, 1, 1], [0, 0, 2]],
    )
    assert float(metrics.accuracy(_LABELS, _PREDICTED, keep)) == pytest.approx(5 / 7)
    assert float(metrics.macro_f1(_LABELS, _PREDICTED, 3, keep)) == pytest.approx(
        (4 / 5 + 2 / 4 + 4 / 5) / 3
    )
    # a class occurring only in the predictions counts (as 0); nothing counted gives NaN
    assert float(metrics.macro_f1([0, 0], [0, 1], 3)) == pytest.approx((2 / 3 + 0) / 2)
    assert np.isnan(float(metrics.macro_f1(_LABELS, _PREDICTED, 3, np.zeros(10, bool))))
    assert np.isnan(float(metrics.accuracy(_LABELS, _PREDICTED, np.zeros(10, bool))))


def test_cohens_kappa_closed_forms(dtype):
    # p_o = 0.7; marginals a: (4, 2, 4)/10, b: (4, 2, 4)/10 → p_e = 0.36; κ = 0.34/0.64
    kappa = metrics.cohens_kappa(_LABELS, _PREDICTED, 3)
    assert kappa.dtype == dtype and float(kappa) == pytest.approx(0.34 / 0.64)
    assert float(metrics.cohens_kappa(_PREDICTED, _LABELS, 3)) == pytest.approx(0.34 / 0.64)
    assert float(metrics.cohens_kappa(_LABELS, _LABELS, 3)) == pytest.approx(1.0)
    # Cohen's classic 2 × 2 table: 20 yes-yes, 5 yes-no, 10 no-yes, 15 no-no → κ = 0.4
    a = np.repeat([0, 0, 1, 1], [20, 5, 10, 15])
    b = np.repeat([0, 1, 0, 1], [20, 5, 10, 15])
    assert float(metrics.cohens_kappa(a, b, 2)) == pytest.approx(0.4)
    # systematic disagreement: κ = −1
    assert float(metrics.cohens_kappa([0, 1, 0, 1], [1, 0, 1, 0], 2)) == pytest.approx(-1.0)
    # p_e = 1: both raters use one class only → defined as 1; nothing counted → NaN
    assert float(metrics.cohens_kappa([2, 2, 2], [2, 2, 2], 3)) == 1.0
    assert np.isnan(float(metrics.cohens_kappa([0, 1], [0, 1], 2, np.zeros(2, bool))))


def test_classification_scores_vmap_equal_a_loop():
    rng = np.random.default_rng(3)
    labels = jnp.asarray(rng.integers(0, 4, (6, 30)))
    predicted = jnp.asarray(rng.integers(0, 4, (6, 30)))
    mask = jnp.asarray(rng.random((6, 30)) < 0.8)
    for fn in (metrics.confusion_matrix, metrics.macro_f1, metrics.cohens_kappa):
        batched = jax.jit(jax.vmap(lambda a, b, m, fn=fn: fn(a, b, 4, m)))(labels, predicted, mask)
        loop = np.stack([np.asarray(fn(a, b, 4, m)) for a, b, m in zip(labels, predicted, mask)])
        np.testing.assert_allclose(batched, loop, rtol=1e-6)
    batched = jax.vmap(metrics.accuracy)(labels, predicted, mask)
    loop = [float(metrics.accuracy(a, b, m)) for a, b, m in zip(labels, predicted, mask)]
    np.testing.assert_allclose(batched, loop, rtol=1e-6)


@pytest.mark.parametrize(
    "labels, predicted, n_classes, mask, match",
    [
        ([0, 3], [0, 1], 3, None, r"labels must lie in \[0, 2\] \(n_classes=3\)"),
        ([0, 1], [0, -1], 3, None, r"predicted must lie in \[0, 2\]"),
        ([0.0, 1.0], [0, 1], 3, None, "labels must be integers"),
        ([0, 1], [0, 1, 1], 3, None, "predicted must have the shape of labels"),
        ([0, 1], [0, 1], 3, [True], "mask must have the shape of labels"),
        ([0, 1], [0, 1], 0, None, "n_classes must be an integer >= 1"),
        ([[0, 1]], [[0, 1]], 3, None, r"labels must have shape \(N,\)"),
    ],
)
def test_classification_scores_reject_bad_input(labels, predicted, n_classes, mask, match):
    for fn in (metrics.confusion_matrix, metrics.macro_f1):
        with pytest.raises(ValueError, match=match):
            fn(np.asarray(labels), np.asarray(predicted), n_classes, mask)
    with pytest.raises(ValueError, match=match.replace("labels", "a").replace("predicted", "b")):
        metrics.cohens_kappa(np.asarray(labels), np.asarray(predicted), n_classes, mask)


# ------------------------------------------------------------------------------ calibration


def _overconfident(dtype):
    """8 items in 3 classes: 4 at confidence 0.9 (bin 14 of 15) with 2 right, 4 at 0.7 (bin 10)
    with 1 right. ECE = ½ |0.5 − 0.9| + ½ |0.25 − 0.7| = 0.425."""
    probs = np.array([[0.9, 0.05, 0.05]] * 4 + [[0.15, 0.7, 0.15]] * 4)
    labels = np.array([0, 0, 1, 2, 1, 0, 0, 2])
    return jnp.asarray(probs, dtype), jnp.asarray(labels)


def test_ece_and_reliability_bins_of_an_overconfident_set(dtype):
    probs, labels = _overconfident(dtype)
    ece = metrics.expected_calibration_error(probs, labels)
    assert ece.dtype == dtype and float(ece) == pytest.approx(0.425, rel=1e-5)
    bins = metrics.calibration_bins(probs, labels)
    np.testing.assert_allclose(bins.edges, np.linspace(0, 1, 16), rtol=1e-6)
    expected_count = np.zeros(15, int)
    expected_count[[10, 13]] = 4
    np.testing.assert_array_equal(bins.count, expected_count)
    np.testing.assert_allclose(np.asarray(bins.confidence)[[10, 13]], [0.7, 0.9], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(bins.accuracy)[[10, 13]], [0.25, 0.5], rtol=1e-6)
    assert np.all(np.isnan(np.delete(np.asarray(bins.accuracy), [10, 13])))
    # the ECE is the count-weighted gap of the reliability diagram
    filled = np.asarray(bins.count) > 0
    gap = np.abs(np.asarray(bins.accuracy) - np.asarray(bins.confidence))[filled]
    assert float(ece) == pytest.approx(np.sum(np.asarray(bins.count)[filled] * gap) / 8)
    # one bin: the gap of the means |3/8 − 0.8|; a mask keeps only the 0.9 items
    assert float(metrics.expected_calibration_error(probs, labels, 1)) == pytest.approx(0.425)
    keep = np.arange(8) < 4
    assert float(metrics.expected_calibration_error(probs, labels, mask=keep)) == pytest.approx(
        0.4, rel=1e-5
    )
    perfect = jnp.asarray(np.eye(3)[[0, 1, 2, 1]], dtype)
    assert float(metrics.expected_calibration_error(perfect, jnp.asarray([0, 1, 2, 1]))) == 0.0


def test_ece_of_a_calibrated_set_is_sampling_noise_and_float32_agrees():
    rng = np.random.default_rng(0)
    n = 20_000
    confidence = rng.uniform(0.34, 1.0, n)
    others = (1 - confidence)[:, None] * rng.dirichlet([1, 1], n)
    probs = np.concatenate([confidence[:, None], others], 1)
    first = np.argmax(probs, 1) == 0
    probs, confidence = probs[first], confidence[first]  # the top label is class 0
    right = rng.random(confidence.size) < confidence  # correct with probability = confidence
    wrong = np.where(others[first, 0] > others[first, 1], 1, 2)
    labels = np.where(right, 0, wrong)
    ece32 = float(metrics.expected_calibration_error(probs.astype(np.float32), labels))
    # sampling error: about Σ_m (n_m/n) √(2/π) √(c(1−c)/n_m) ≈ 0.005 here
    assert 0.0 < ece32 < 0.015
    with jax.enable_x64(True):
        ece64 = float(metrics.expected_calibration_error(probs, labels))
    assert ece32 == pytest.approx(ece64, abs=2e-6)
    # an overconfident model (confidence raised, accuracy kept) is clearly off
    sharpened = probs ** 3 / np.sum(probs**3, 1, keepdims=True)
    assert float(metrics.expected_calibration_error(sharpened, labels)) > 0.1


def test_calibration_vmap_equals_a_loop():
    rng = np.random.default_rng(4)
    probs = jnp.asarray(rng.dirichlet(np.ones(3) * 0.5, size=(5, 40)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, (5, 40)))
    batched = jax.vmap(metrics.expected_calibration_error)(probs, labels)
    loop = [float(metrics.expected_calibration_error(p, y)) for p, y in zip(probs, labels)]
    np.testing.assert_allclose(batched, loop, rtol=1e-6)
    bins = jax.vmap(metrics.calibration_bins)(probs, labels)
    assert bins.count.shape == (5, 15) and bins.edges.shape == (5, 16)
    np.testing.assert_array_equal(np.sum(bins.count, 1), 40)


@pytest.mark.parametrize(
    "probs, labels, kwargs, match",
    [
        (np.full((2, 3), 1 / 3), [0, 3], {}, r"labels must lie in \[0, 2\]"),
        (np.full((2, 3), 1 / 3), [0, 1, 2], {}, "labels must have the shape of probs' first axis"),
        (np.full(3, 1 / 3), [0], {}, r"probs must have shape \(N, k\)"),
        (np.full((2, 3), 1 / 3), [0, 1], {"n_bins": 0}, "n_bins must be an integer >= 1"),
        (np.full((2, 3), 0.5), [0, 1], {}, "probs must sum to 1"),
    ],
)
def test_calibration_rejects_bad_input(probs, labels, kwargs, match):
    for fn in (metrics.expected_calibration_error, metrics.calibration_bins):
        with pytest.raises(ValueError, match=match):
            fn(probs, np.asarray(labels), **kwargs)


# --------------------------------------------------------------------------- grouped report


def _numpy_scores(probs, labels, keep, n_bins=15):
    """Accuracy, macro-F1, mean entropy and ECE of the kept items, in plain NumPy."""
    p, y = probs[keep], labels[keep]
    predicted, confidence = p.argmax(1), p.max(1)
    f1 = []
    for c in range(p.shape[1]):
        tp = np.sum((y == c) & (predicted == c))
        denominator = np.sum(y == c) + np.sum(predicted == c)
        if denominator:
            f1.append(2 * tp / denominator)
    entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), 1)
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    gaps = [np.sum((predicted == y)[bins == b] - confidence[bins == b]) for b in range(n_bins)]
    return {
        "accuracy": np.mean(predicted == y),
        "macro_f1": np.mean(f1),
        "mean_entropy": entropy.mean(),
        "ece": np.sum(np.abs(gaps)) / len(y),
    }


def test_grouped_report_equals_per_group_scores(dtype):
    rng = np.random.default_rng(5)
    n, k, g = 90, 3, 4
    probs = rng.dirichlet(np.ones(k), n)
    labels = rng.integers(0, k, n)
    groups = rng.integers(0, g - 1, n)  # group 3 stays empty
    mask = rng.random(n) < 0.9
    probs_t = jnp.asarray(probs, dtype)
    report = metrics.grouped_classification_report(probs_t, labels, groups, k, g, mask=mask)
    assert set(report) == {"count", "accuracy", "macro_f1", "mean_entropy", "ece", "confusion"}
    assert report["accuracy"].shape == (g + 1,) and report["confusion"].shape == (g + 1, k, k)
    assert report["accuracy"].dtype == dtype and report["ece"].dtype == dtype
    probs = np.asarray(probs_t, float)
    for row in range(g + 1):
        keep = mask & ((groups == row) | (row == g))
        assert int(report["count"][row]) == int(keep.sum())
        cm = np.zeros((k, k), int)
        np.add.at(cm, (labels[keep], probs[keep].argmax(1)), 1)
        np.testing.assert_array_equal(report["confusion"][row], cm)
        if row == g - 1:
            for key in ("accuracy", "macro_f1", "mean_entropy", "ece"):
                assert np.isnan(float(report[key][row]))
            continue
        for key, value in _numpy_scores(probs, labels, keep).items():
            assert float(report[key][row]) == pytest.approx(value, rel=1e-5), (key, row)
    # the overall row is what the ungrouped functions give
    predicted = jnp.argmax(probs_t, 1)
    assert float(report["macro_f1"][g]) == pytest.approx(
        float(metrics.macro_f1(labels, predicted, k, mask)), rel=1e-6
    )
    assert float(report["ece"][g]) == pytest.approx(
        float(metrics.expected_calibration_error(probs_t, labels, mask=mask)), rel=1e-6
    )


def test_grouped_report_rejects_bad_groups():
    probs = np.full((4, 2), 0.5)
    labels = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"groups must lie in \[0, 1\] \(n_groups=2\)"):
        metrics.grouped_classification_report(probs, labels, np.array([0, 1, 2, 0]), 2, 2)
    with pytest.raises(ValueError, match="groups must have the shape of labels"):
        metrics.grouped_classification_report(probs, labels, np.array([0, 1]), 2, 2)
    with pytest.raises(ValueError, match="probs must have n_classes=3 columns"):
        metrics.grouped_classification_report(probs, labels, np.array([0, 1, 1, 0]), 3, 2)
    with pytest.raises(ValueError, match="n_groups must be an integer >= 1"):
        metrics.grouped_classification_report(probs, labels, np.array([0, 1, 1, 0]), 2, 0)


# ------------------------------------------------------------------ dose-efficiency curve


def _dec_reference(dose, score, mask=None):
    """Exact area of the curve in plain Python: jump at the first step, trapezoids, hold."""
    kept = [(d, s) for d, s, m in zip(dose, score, np.ones(len(dose), bool) if mask is None
                                      else mask) if m]  # fmt: skip
    if not kept:
        return 0.0
    area = sum((d1 - d0) * (s0 + s1) / 2 for (d0, s0), (d1, s1) in zip(kept, kept[1:]))
    return area + kept[-1][1] * (1 - kept[-1][0])


def test_dec_auc_closed_forms(dtype):
    ramp = jnp.linspace(0.0, 1.0, 11, dtype=dtype)
    auc = metrics.dec_auc(ramp, ramp)
    assert auc.dtype == dtype and float(auc) == pytest.approx(0.5, rel=1e-6)
    assert float(metrics.dec_auc(ramp, jnp.ones_like(ramp))) == pytest.approx(1.0)
    assert float(metrics.dec_auc(jnp.zeros(1, dtype), jnp.ones(1, dtype))) == 1.0
    # score 1 reached at 40 % of the budget, then stopping: 0.6 held + the ramp before it
    stop = jnp.asarray([0.1, 0.2, 0.3, 0.4], dtype)
    assert float(metrics.dec_auc(stop, jnp.ones(4, dtype))) == pytest.approx(0.9)
    assert float(metrics.dec_auc(stop, stop * 2.5)) == pytest.approx(0.7875)
    # the first measurement at 40 % with score 1: exactly the held 0.6
    assert float(metrics.dec_auc(jnp.asarray([0.4], dtype), jnp.ones(1, dtype))) == pytest.approx(
        0.6
    )
    # zero-dose steps make vertical jumps (no area); masked steps are ignored
    dose = jnp.asarray([0.0, 0.0, 0.5, 0.5, 0.9, 0.95], dtype)
    score = jnp.asarray([0.2, 0.4, 0.4, 1.0, 0.8, 0.1], dtype)
    mask = np.array([True, True, True, True, False, False])
    assert float(metrics.dec_auc(dose, score, mask)) == pytest.approx(0.5 * 0.4 + 0.5 * 1.0)
    assert float(metrics.dec_auc(dose, score, np.zeros(6, bool))) == 0.0
    assert float(metrics.dec_auc(dose, score)) == pytest.approx(_dec_reference(
        np.asarray(dose, float), np.asarray(score, float)))  # fmt: skip


def test_dose_efficiency_curve_values_and_area_agree_with_dec_auc(dtype):
    dose = jnp.asarray([0.1, 0.2, 0.3, 0.4, 0.0, 0.0], dtype)
    score = jnp.asarray([0.25, 0.5, 0.75, 1.0, 0.0, 0.0], dtype)
    mask = np.array([True, True, True, True, False, False])  # fixed-capacity buffer, 4 used
    grid = jnp.asarray([0.0, 0.05, 0.1, 0.15, 0.4, 0.9, 1.0], dtype)
    curve = metrics.dose_efficiency_curve(dose, score, grid, mask)
    assert curve.dtype == dtype
    np.testing.assert_allclose(curve, [0, 0, 0.25, 0.375, 1, 1, 1], rtol=1e-6, atol=1e-7)
    # a fine trapezoid quadrature of the curve converges to the exact area
    fine = jnp.linspace(0.0, 1.0, 20001, dtype=dtype)
    values = np.asarray(metrics.dose_efficiency_curve(dose, score, fine, mask), float)
    quad = np.sum(np.diff(np.asarray(fine, float)) * (values[1:] + values[:-1]) / 2)
    assert quad == pytest.approx(float(metrics.dec_auc(dose, score, mask)), abs=2e-4)
    # nothing measured: the curve is 0
    empty = metrics.dose_efficiency_curve(dose, score, grid, np.zeros(6, bool))
    np.testing.assert_array_equal(empty, 0.0)


def test_dec_vmap_over_episodes_equals_a_loop():
    rng = np.random.default_rng(6)
    e, t = 8, 12
    dose = np.sort(rng.random((e, t)), axis=1).astype(np.float32)
    score = rng.random((e, t)).astype(np.float32)
    used = rng.integers(0, t + 1, e)
    mask = np.arange(t)[None, :] < used[:, None]
    batched = jax.jit(jax.vmap(metrics.dec_auc))(dose, score, mask)
    for i in range(e):
        assert float(batched[i]) == pytest.approx(_dec_reference(dose[i], score[i], mask[i]),
                                                  rel=1e-5, abs=1e-6)  # fmt: skip
        assert float(batched[i]) == pytest.approx(float(metrics.dec_auc(dose[i], score[i],
                                                                        mask[i])), rel=1e-6)
    grid = jnp.linspace(0.0, 1.0, 7)
    curves = jax.vmap(metrics.dose_efficiency_curve, in_axes=(0, 0, None, 0))(dose, score, grid,
                                                                               mask)  # fmt: skip
    for i in range(e):
        np.testing.assert_allclose(curves[i], metrics.dose_efficiency_curve(dose[i], score[i],
                                                                            grid, mask[i]))


@pytest.mark.parametrize(
    "dose, score, mask, match",
    [
        ([0.1, 0.05], [0.2, 0.3], None, "dose_fraction must be non-decreasing"),
        ([0.1, 1.5], [0.2, 0.3], None, r"dose_fraction must lie in \[0.0, 1.0\]"),
        ([0.1, 0.2], [0.2, 1.3], None, r"score must lie in \[0.0, 1.0\]"),
        ([0.1, 0.2], [0.2], None, "score must have the shape of dose_fraction"),
        ([], [], None, r"dose_fraction must have shape \(T,\) with T ≥ 1"),
        ([0.1, 0.2], [0.2, 0.3], [True], "mask must have the shape of dose_fraction"),
        ([0.1, 0.2], [0.2, np.nan], None, r"score must lie in \[0.0, 1.0\]"),
    ],
)
def test_dec_rejects_bad_input(dose, score, mask, match):
    with pytest.raises(ValueError, match=match):
        metrics.dec_auc(np.asarray(dose), np.asarray(score), mask)
    with pytest.raises(ValueError, match=match):
        metrics.dose_efficiency_curve(np.asarray(dose), np.asarray(score), [0.5], mask)


def test_dec_ignores_masked_garbage_and_checks_grid():
    # entries past the end of the episode may hold anything (here: a falling, out-of-range dose)
    dose, score = np.array([0.2, 0.6, 0.0, 7.0]), np.array([0.5, 1.0, 9.0, -1.0])
    mask = np.array([True, True, False, False])
    assert float(metrics.dec_auc(dose, score, mask)) == pytest.approx(0.4 * 0.75 + 0.4)
    with pytest.raises(ValueError, match=r"grid must lie in \[0.0, 1.0\]"):
        metrics.dose_efficiency_curve(dose, score, [1.2], mask)
