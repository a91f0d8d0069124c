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
