"""Campaign metrics: learning curves and coverage in patch, feature and target space;
classification uncertainty, agreement and calibration; the STEMGym dose-efficiency curve.

Definitions follow the supplement of Pratiush et al. 2026 (BEACON-DKL, shared/papers/003, S1
and S2). With μ_t(x_j) and σ_t(x_j) the surrogate mean and standard deviation after t
measurements and y(x_j) the ground truth at the N candidates of a world:

- MAE_t = (1/N) Σ_j |μ_t(x_j) − y(x_j)| (:func:`mae`), the mean prediction μ̄_t
  (:func:`surrogate_mean`) and the mean uncertainty U_t = (1/N) Σ_j σ_t(x_j)
  (:func:`surrogate_uncertainty`).
- Coverage C_t = |{ℓ(j) : j ∈ A_t}| / K: the fraction of the K regions of a space that hold at
  least one acquired point (A_t, the points acquired up to step t), with regions given by a label
  per candidate: k-means clusters of z-scored, randomly projected patches
  (:func:`patch_space_labels`), k-means clusters of VAE latent means
  (:func:`feature_space_labels`), or equal-width bins of the ground truth
  (:func:`target_space_labels`). :func:`label_coverage` counts only labels that some candidate
  holds, so for target bins the denominator is the paper's B* (the bins the ground truth reaches).

Labels are computed once per world; :func:`label_coverage` is then a few scatter operations,
cheap enough to run inside ``lax.scan`` at every step and ``vmap`` over campaigns.

For classifiers (e.g. the context-aware defect classifier): :func:`predictive_entropy`,
:func:`mutual_information`, :func:`confusion_matrix`, :func:`accuracy`, :func:`macro_f1`,
:func:`cohens_kappa`, :func:`expected_calibration_error`, :func:`calibration_bins` and
:func:`grouped_classification_report` (all of them per context or material at once). For
dose-budget episodes (STEMGym): :func:`dose_efficiency_curve` and its area :func:`dec_auc`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from stemjax._validation import check_finite, check_in_range, check_int_at_least, is_concrete
from stemjax.models import vae as vae_lib


_HIGHEST = jax.lax.Precision.HIGHEST  # full float32 products on GPUs/TPUs too


def _float(x) -> Array:
    x = jnp.asarray(x)
    return x.astype(jnp.result_type(x, float))


# --------------------------------------------------------------------------------------------
# k-means


def kmeans(
    key: PRNGKeyArray,
    points: Float[ArrayLike, "N d"],
    k: int,
    *,
    iterations: int = 50,
) -> tuple[Int[Array, " N"], Float[Array, "k d"]]:
    """k-means clustering: k-means++ seeding from ``key``, then Lloyd iterations.

    Seeding (Arthur & Vassilvitskii 2007): the first centre is a uniformly drawn point, each
    further one a point drawn with probability ∝ its squared distance to the nearest centre
    chosen so far (by the Gumbel-max trick, all noise drawn at once). Then ``iterations`` Lloyd
    steps (assign each point to its nearest centre, move each centre to the mean of its points)
    in one ``lax.fori_loop``. A centre that loses all its points stays where it is, so with
    fewer than k distinct points some labels are unused. Memory O(N·k + N·d). Same key, same
    result; jittable with ``k`` and ``iterations`` static.

    Args:
        key: PRNG key of the seeding.
        points: (N, d) points, any consistent unit.
        k: number of clusters, 1 ≤ k ≤ N (static).
        iterations: number of Lloyd steps, ≥ 0 (static).

    Returns:
        labels (N,) int32 in [0, k), and centroids (k, d) in the units of ``points``.
    """
    points = _float(points)
    if points.ndim != 2:
        raise ValueError(f"points must have shape (N, d); got {points.shape}")
    n = points.shape[0]
    k = check_int_at_least("k", k, 1)
    if k > n:
        raise ValueError(f"k must be an integer in [1, N={n}] (the number of points); got {k}")
    iterations = check_int_at_least("iterations", iterations, 0)
    check_finite("points", points)
    return _kmeans(key, points, k, iterations)


@partial(jax.jit, static_argnames=("k", "iterations"))
def _kmeans(key, points, k, iterations):
    n, d = points.shape
    center = jnp.mean(points, axis=0)
    x = points - center  # centred: the expanded distance below loses less to rounding
    x2 = jnp.sum(x * x, axis=1)

    def sqdist(c):  # (n, k) squared distances to the centres c (k, d)
        cross = jnp.matmul(x, c.T, precision=_HIGHEST)
        return jnp.maximum(x2[:, None] - 2.0 * cross + jnp.sum(c * c, axis=1), 0.0)

    k_first, k_rest = jax.random.split(key)
    first = x[jax.random.randint(k_first, (), 0, n)]
    centres = jnp.zeros((k, d), x.dtype).at[0].set(first)
    nearest = jnp.sum((x - first) ** 2, axis=1)
    gumbel = jax.random.gumbel(k_rest, (k, n), x.dtype)  # draw i ∝ nearest: argmax log + G

    def seed(i, carry):
        centres, nearest = carry
        log_p = jnp.where(nearest > 0, jnp.log(jnp.where(nearest > 0, nearest, 1.0)), -jnp.inf)
        c = x[jnp.argmax(log_p + gumbel[i])]
        return centres.at[i].set(c), jnp.minimum(nearest, jnp.sum((x - c) ** 2, axis=1))

    centres, _ = jax.lax.fori_loop(1, k, seed, (centres, nearest))

    def lloyd(_, centres):
        members = jax.nn.one_hot(jnp.argmin(sqdist(centres), axis=1), k, dtype=x.dtype)
        counts = jnp.sum(members, axis=0)
        means = jnp.matmul(members.T, x, precision=_HIGHEST) / jnp.maximum(counts, 1.0)[:, None]
        return jnp.where(counts[:, None] > 0, means, centres)

    centres = jax.lax.fori_loop(0, iterations, lloyd, centres)
    labels = jnp.argmin(sqdist(centres), axis=1).astype(jnp.int32)
    return labels, centres + center


# --------------------------------------------------------------------------------------------
# Labels of the three spaces (paper 003, S2 a–c)


def normalize_patches(patches: Float[ArrayLike, "N *d"]) -> Float[Array, "N D"]:
    """Flatten each patch and z-score it (zero mean, unit variance over its own pixels).

    A flat patch (standard deviation ≤ 1e-5 × its largest absolute value, or zero) becomes the
    zero vector instead of amplified rounding noise.

    Args:
        patches: (N, *d) patches or vectors, any intensity unit.

    Returns:
        (N, D) normalised patches, D = prod(d).
    """
    patches = _float(patches)
    if patches.ndim < 2:
        raise ValueError(f"patches must have shape (N, *d) with at least one pixel axis; got "
                         f"{patches.shape}")  # fmt: skip
    return _normalize(patches.reshape(patches.shape[0], -1))


@jax.jit
def _normalize(flat):
    centred = flat - jnp.mean(flat, axis=1, keepdims=True)
    std = jnp.sqrt(jnp.mean(centred**2, axis=1, keepdims=True))
    scale = jnp.max(jnp.abs(flat), axis=1, keepdims=True)
    flat_patch = std <= 1e-5 * scale
    return jnp.where(flat_patch, 0.0, centred / jnp.where(flat_patch, 1.0, std))


def patch_space_labels(
    key: PRNGKeyArray,
    patches: Float[ArrayLike, "N *d"],
    k: int = 20,
    *,
    projection_dim: int = 16,
) -> Int[Array, " N"]:
    """Patch-space cluster of each candidate (paper 003, S2a).

    Each patch is z-scored over its own pixels (:func:`normalize_patches`; so patches that differ
    only in brightness and contrast share a label), projected to ``projection_dim`` dimensions by
    a Gaussian random matrix drawn from ``key`` (entries N(0, 1/projection_dim)), and clustered
    into ``k`` groups by :func:`kmeans`.

    Args:
        key: PRNG key of the projection and the k-means seeding.
        patches: (N, *d) image patches (or feature vectors) of the N candidates.
        k: number of clusters K, 1 ≤ k ≤ N.
        projection_dim: dimension of the random projection, ≥ 1.

    Returns:
        (N,) int32 labels in [0, k).
    """
    projection_dim = check_int_at_least("projection_dim", projection_dim, 1)
    check_finite("patches", patches)
    k_proj, k_means = jax.random.split(key)
    projected = _project(k_proj, normalize_patches(patches), projection_dim)
    return kmeans(k_means, projected, k)[0]


@partial(jax.jit, static_argnames=("projection_dim",))
def _project(key, z, projection_dim):
    matrix = jax.random.normal(key, (z.shape[1], projection_dim), z.dtype)
    return jnp.matmul(z, matrix / np.sqrt(projection_dim), precision=_HIGHEST)


def feature_space_labels(
    key: PRNGKeyArray,
    patches: Float[ArrayLike, "N h w"],
    k: int = 20,
    *,
    steps: int = 1000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    latent_dim: int = 2,
) -> Int[Array, " N"]:
    """Feature-space (VAE latent) cluster of each candidate (paper 003, S2b).

    The patches are standardised with one mean and one standard deviation over the whole set (so
    brightness, i.e. Z-contrast, still counts), a VAE with a ``latent_dim``-D latent
    (:mod:`stemjax.models.vae`) is trained on all of them, each is encoded to its latent mean,
    and the means are clustered into ``k`` groups by :func:`kmeans`.

    The paper used pyroVED's rotation- and translation-invariant VAE; this is a plain MLP VAE
    with a Gaussian likelihood, so patches that differ only by a rotation or shift may land in
    different clusters.

    Args:
        key: PRNG key of the VAE's initial weights, its minibatches and the k-means seeding.
        patches: (N, h, w) image patches of the N candidates.
        k: number of clusters K, 1 ≤ k ≤ N.
        steps, batch_size, learning_rate: VAE training (:func:`~stemjax.models.vae.train_vae`).
        latent_dim: size of the latent, ≥ 1 (the paper: 2).

    Returns:
        (N,) int32 labels in [0, k).
    """
    patches = _float(patches)
    if patches.ndim != 3:
        raise ValueError(f"patches must have shape (N, h, w); got {patches.shape}")
    check_finite("patches", patches)
    standard = _standardise(patches)
    k_init, k_train, k_means = jax.random.split(key, 3)
    model = vae_lib.init_vae(k_init, patches.shape[1:], latent_dim, dtype=patches.dtype)
    model, _ = vae_lib.train_vae(
        k_train, model, standard, steps=steps, batch_size=batch_size, learning_rate=learning_rate
    )
    mean, _ = vae_lib.encode(model, standard)
    return kmeans(k_means, mean, k)[0]


@jax.jit
def _standardise(x):
    std = jnp.std(x)
    return (x - jnp.mean(x)) / jnp.where(std > 0, std, 1.0)


def target_space_labels(targets: Float[ArrayLike, " N"], n_bins: int = 20) -> Int[Array, " N"]:
    """Target-space bin of each candidate (paper 003, S2c).

    B = ``n_bins`` equal-width bins span [min y, max y] of the ground truth; bin b holds
    min y + b·w ≤ y < min y + (b+1)·w with w = (max y − min y)/B, and the maximum goes in the last
    bin. This is the binning of :func:`stemjax.acquisition.occupied_bins` with low = min y and
    high = max y, so ``label_coverage`` of these labels equals
    ``target_coverage(..., reachable=occupied_bins(targets, ...))``.

    Constant targets (max y = min y) have a single reachable value: every candidate gets bin 0,
    and coverage is 1 from the first measurement on.

    Args:
        targets: (N,) ground-truth scalar outcome of each candidate (finite), outcome units.
        n_bins: number of bins B, ≥ 1 (static).

    Returns:
        (N,) int32 labels in [0, n_bins).
    """
    n_bins = check_int_at_least("n_bins", n_bins, 1)
    targets = _float(targets)
    if targets.ndim != 1 or targets.shape[0] < 1:
        raise ValueError(f"targets must have shape (N,) with N ≥ 1; got {targets.shape}")
    check_finite("targets", targets)
    return _target_bins(targets, n_bins)


@partial(jax.jit, static_argnames=("n_bins",))
def _target_bins(targets, n_bins):
    low, high = jnp.min(targets), jnp.max(targets)
    width = jnp.where(high > low, high - low, 1.0)
    index = jnp.floor((targets - low) / width * n_bins).astype(jnp.int32)
    return jnp.clip(index, 0, n_bins - 1)


# --------------------------------------------------------------------------------------------
# Coverage


def label_coverage(
    labels: Int[ArrayLike, " N"],
    visited: Bool[ArrayLike, " N"],
    n_labels: int,
) -> Float[Array, ""]:
    """Fraction of the labels present in the world that hold at least one visited candidate.

    C = |{ℓ(j) : j visited}| / |{ℓ(j) : j = 1..N}|. Only labels that some candidate holds count
    in the denominator (for target bins this is the paper's B*, the reachable bins; for k-means
    clusters it is K unless a cluster ended up empty). A label of −1 marks a candidate to leave
    out (neither present nor visited). Labels 3 present of 5 possible, visits in 2 of them: 2/3.
    Jittable (``n_labels`` static) and ``vmap``-able over ``visited`` (campaigns).

    Args:
        labels: (N,) integer label of each candidate, in [−1, n_labels).
        visited: (N,) True for the candidates measured so far.
        n_labels: number of possible labels (K clusters or B bins), ≥ 1 (static).

    Returns:
        () coverage in [0, 1] (0 when no label is present).
    """
    n_labels = check_int_at_least("n_labels", n_labels, 1)
    labels = jnp.asarray(labels)
    visited = jnp.asarray(visited)
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (N,); got {labels.shape}")
    if visited.shape != labels.shape:
        raise ValueError(f"visited must have the shape of labels, {labels.shape}; got "
                         f"{visited.shape}")  # fmt: skip
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integers; got dtype {labels.dtype}")
    if is_concrete(labels) and labels.size:
        concrete = np.asarray(labels)
        lo, hi = int(concrete.min()), int(concrete.max())
        if lo < -1 or hi >= n_labels:
            raise ValueError(
                f"labels must lie in [-1, {n_labels - 1}] (n_labels={n_labels}; -1 leaves a "
                f"candidate out); got values from {lo} to {hi}"
            )
    return _label_coverage(labels, visited.astype(bool), n_labels)


@partial(jax.jit, static_argnames=("n_labels",))
def _label_coverage(labels, visited, n_labels):
    valid = (labels >= 0) & (labels < n_labels)
    index = jnp.where(valid, labels, 0)
    present = jnp.zeros((n_labels,), bool).at[index].max(valid)
    hit = jnp.zeros((n_labels,), bool).at[index].max(valid & visited)
    dtype = jnp.result_type(float)
    return jnp.sum(hit).astype(dtype) / jnp.maximum(jnp.sum(present), 1).astype(dtype)


def coverage_curve(
    labels: Int[ArrayLike, " N"],
    order: Int[ArrayLike, " T"],
    n_labels: int,
    *,
    initial: Bool[ArrayLike, " N"] | None = None,
) -> Float[Array, " T"]:
    """Coverage after each acquisition of a recorded trajectory, in one pass (no loop over t).

    Entry t equals ``label_coverage(labels, visited_t, n_labels)`` where ``visited_t`` holds
    ``initial`` and ``order[:t + 1]``. Entries of ``order`` equal to −1 (unused capacity) are
    skipped: the curve stays flat there.

    Args:
        labels: (N,) label of each candidate, in [−1, n_labels).
        order: (T,) candidate index acquired at each step, in [−1, N).
        n_labels: number of possible labels, ≥ 1 (static).
        initial: (N,) True for candidates measured before step 0 (e.g. seeds); default none.

    Returns:
        (T,) coverage in [0, 1], non-decreasing.
    """
    labels = jnp.asarray(labels)
    order = jnp.asarray(order)
    n = labels.shape[0] if labels.ndim == 1 else 0
    initial = jnp.zeros((n,), bool) if initial is None else jnp.asarray(initial, bool)
    label_coverage(labels, initial, n_labels)  # validates labels, initial and n_labels
    if order.ndim != 1 or not jnp.issubdtype(order.dtype, jnp.integer):
        raise ValueError(f"order must be an integer array of shape (T,); got {order.dtype} "
                         f"{order.shape}")  # fmt: skip
    if is_concrete(order) and order.size:
        concrete = np.asarray(order)
        lo, hi = int(concrete.min()), int(concrete.max())
        if lo < -1 or hi >= n:
            raise ValueError(f"order must lie in [-1, {n - 1}] (N={n}; -1 skips a step); got "
                             f"values from {lo} to {hi}")  # fmt: skip
    return _coverage_curve(labels, order, initial, n_labels)


@partial(jax.jit, static_argnames=("n_labels",))
def _coverage_curve(labels, order, initial, n_labels):
    t = order.shape[0]
    valid = (labels >= 0) & (labels < n_labels)
    index = jnp.where(valid, labels, 0)
    present = jnp.zeros((n_labels,), bool).at[index].max(valid)
    # first step at which each candidate is measured (−1: before step 0, t: never)
    steps = jnp.arange(t, dtype=jnp.int32)
    slot = jnp.where(order >= 0, order, labels.shape[0])  # out of range: dropped
    first = jnp.full(labels.shape, t, jnp.int32).at[slot].min(steps, mode="drop")
    first = jnp.where(initial, -1, first)
    # first step at which each label is reached
    reached = jnp.full((n_labels,), t, jnp.int32).at[index].min(jnp.where(valid, first, t))
    hits = jnp.sum((reached[None, :] <= steps[:, None]) & present[None, :], axis=1)
    dtype = jnp.result_type(float)
    return hits.astype(dtype) / jnp.maximum(jnp.sum(present), 1).astype(dtype)


# --------------------------------------------------------------------------------------------
# Learning curves (paper 003, S1)


def _masked_mean(name, values, mask):
    values = _float(values)
    if mask is None:
        return jnp.mean(values)
    mask = jnp.asarray(mask, bool)
    if mask.shape != values.shape:
        raise ValueError(f"mask must have the shape of {name}, {values.shape}; got {mask.shape}")
    total = jnp.sum(jnp.where(mask, values, 0.0))
    return total / jnp.sum(mask).astype(values.dtype)


def mae(
    prediction: Float[ArrayLike, " N"],
    targets: Float[ArrayLike, " N"],
    mask: Bool[ArrayLike, " N"] | None = None,
) -> Float[Array, ""]:
    """Mean absolute error of the surrogate over the world (paper 003, S1a).

    MAE = (1/N) Σ_j |μ(x_j) − y(x_j)| over the candidates where ``mask`` is True (default: all).
    An all-False mask gives NaN.

    Args:
        prediction: (N,) surrogate mean μ at each candidate, outcome units.
        targets: (N,) ground truth y, outcome units.
        mask: (N,) True for the candidates to include.

    Returns:
        () MAE, outcome units.
    """
    prediction, targets = _float(prediction), _float(targets)
    if prediction.shape != targets.shape:
        raise ValueError(f"prediction must have the shape of targets, {targets.shape}; got "
                         f"{prediction.shape}")  # fmt: skip
    return _masked_mean("prediction", jnp.abs(prediction - targets), mask)


def surrogate_mean(
    prediction: Float[ArrayLike, " N"], mask: Bool[ArrayLike, " N"] | None = None
) -> Float[Array, ""]:
    """μ̄ = (1/N) Σ_j μ(x_j), the surrogate's average prediction (paper 003, S1b), outcome units."""
    return _masked_mean("prediction", prediction, mask)


def surrogate_uncertainty(
    variance: Float[ArrayLike, " N"], mask: Bool[ArrayLike, " N"] | None = None
) -> Float[Array, ""]:
    """U = (1/N) Σ_j σ(x_j) from predictive variances σ² (paper 003, S1c), outcome units.

    Negative variances from rounding count as 0.
    """
    return _masked_mean("variance", jnp.sqrt(jnp.maximum(_float(variance), 0.0)), mask)


# --------------------------------------------------------------------------------------------
# Classification: predictive uncertainty (context-aware Bayesian defect classifier)


def _check_probs(name: str, probs, min_ndim: int = 1, layout: str = "(..., k)") -> Array:
    """Float array of class probabilities with classes on the last axis, each row summing to 1."""
    probs = _float(probs)
    if probs.ndim < min_ndim or probs.shape[-1] < 1:
        raise ValueError(f"{name} must have shape {layout} with k ≥ 1 classes on the last axis; "
                         f"got {probs.shape}")  # fmt: skip
    if is_concrete(probs) and probs.size:
        arr = np.asarray(probs, dtype=float)
        if not np.all(np.isfinite(arr) & (arr >= 0.0) & (arr <= 1.0)):
            bad = arr[~(np.isfinite(arr) & (arr >= 0.0) & (arr <= 1.0))]
            raise ValueError(f"{name} must be probabilities in [0, 1]; got {bad.size} value(s) "
                             f"outside, e.g. {bad.flat[0]!r}")  # fmt: skip
        total = arr.sum(axis=-1)
        worst = float(np.max(np.abs(total - 1.0)))
        if worst > 1e-3:
            raise ValueError(f"{name} must sum to 1 over its last axis (the k classes; within "
                             f"1e-3); got sums off by up to {worst:.3g}")  # fmt: skip
    return probs


@jax.jit
def _entropy(probs):
    positive = probs > 0
    terms = jnp.where(positive, probs * jnp.log(jnp.where(positive, probs, 1.0)), 0.0)
    h = -jnp.sum(terms, axis=-1)
    return jnp.where(h > 0, h, 0.0)  # turns −0.0 of one-hot rows into +0.0


def predictive_entropy(probs: Float[ArrayLike, "... k"]) -> Float[Array, "..."]:
    """Shannon entropy of categorical predictive distributions, in nats.

    H[p] = −Σ_c p_c log p_c with 0 · log 0 = 0, so a one-hot row gives exactly 0 (and a zero
    gradient rather than NaN) and a uniform row over k classes gives log k. Each term is ≤ 0, so
    the result is ≥ 0 in any precision. Jittable and ``vmap``-able.

    Args:
        probs: (..., k) class probabilities, each row summing to 1 (within 1e-3).

    Returns:
        (...) entropy in nats, in [0, log k].
    """
    return _entropy(_check_probs("probs", probs))


_PHI_SERIES_MAX = 0.125  # |r| below which φ(1 + r) is summed as a series
_PHI_COEFFS = tuple(1.0 / ((n + 2) * (n + 1)) for n in range(9))  # r²/2 − r³/6 + r⁴/12 − …


@jax.jit
def _mutual_information(member_probs):
    mean = jnp.mean(member_probs, axis=0)
    safe_mean = jnp.where(mean > 0, mean, 1.0)
    u = member_probs / safe_mean  # p_s / p̄ ≥ 0; 0/1 = 0 where p̄ = 0 (then p_s = 0 too)
    r = (member_probs - mean) / safe_mean  # u − 1 without the rounding of u near 1
    # φ(u) = u log u − u + 1 ≥ 0; its series at u = 1 keeps full relative precision for small r
    small = jnp.abs(r) <= _PHI_SERIES_MAX
    rs = jnp.where(small, r, 0.0)
    series = jnp.zeros_like(rs)
    for c in reversed(_PHI_COEFFS):
        series = series * (-rs) + c
    series = rs * rs * series
    u_safe = jnp.where(u > 0, u, 1.0)
    direct = jnp.where(u > 0, u * jnp.log(u_safe), 0.0) - u + 1.0
    phi = jnp.where(small, series, direct)
    kl = jnp.sum(mean * phi, axis=-1)  # KL(p_s ‖ p̄), one per member: (s, ...)
    return jnp.maximum(jnp.mean(kl, axis=0), 0.0)


def mutual_information(member_probs: Float[ArrayLike, "s ... k"]) -> Float[Array, "..."]:
    """Epistemic uncertainty: mutual information between the label and the model parameters.

    From S ensemble members or posterior samples with class probabilities p_s and their mean
    p̄ = (1/S) Σ_s p_s, I = H[p̄] − (1/S) Σ_s H[p_s] (total minus expected aleatoric entropy;
    Houlsby et al. 2011, "BALD"; Depeweg et al. 2018). It is evaluated as the equal quantity
    (1/S) Σ_s KL(p_s ‖ p̄) = (1/S) Σ_s Σ_c p̄_c φ(p_sc / p̄_c), φ(u) = u log u − u + 1 ≥ 0, with φ
    summed as its Taylor series at u = 1 when |u − 1| ≤ 1/8. Every term is ≥ 0 and small
    disagreements keep their relative precision, so float32 matches float64 even where the
    difference of entropies would cancel; the result is clipped at 0. Members that agree give 0.

    Args:
        member_probs: (S, ..., k) class probabilities of S ≥ 1 members, each row summing to 1.

    Returns:
        (...) mutual information in nats, in [0, log k].
    """
    probs = _check_probs("member_probs", member_probs, min_ndim=2, layout="(S, ..., k)")
    return _mutual_information(probs)


# --------------------------------------------------------------------------------------------
# Classification: agreement and scores


def _check_labels(name: str, labels, n_classes: int, shape=None, shape_name: str = "") -> Array:
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"{name} must be integers; got dtype {labels.dtype}")
    if shape is not None and labels.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape of {shape_name}, {tuple(shape)}; got "
                         f"{labels.shape}")  # fmt: skip
    if is_concrete(labels) and labels.size:
        concrete = np.asarray(labels)
        lo, hi = int(concrete.min()), int(concrete.max())
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"{name} must lie in [0, {n_classes - 1}] (n_classes={n_classes}); "
                             f"got values from {lo} to {hi}")  # fmt: skip
    return labels


def _check_mask(mask, shape, name: str) -> Array:
    if mask is None:
        return jnp.ones(shape, bool)
    mask = jnp.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"mask must have the shape of {name}, {tuple(shape)}; got {mask.shape}")
    return mask.astype(bool)


def _pair(labels, predicted, n_classes, mask, names=("labels", "predicted")):
    n_classes = check_int_at_least("n_classes", n_classes, 1)
    labels = _check_labels(names[0], labels, n_classes)
    if labels.ndim != 1:
        raise ValueError(f"{names[0]} must have shape (N,); got {labels.shape}")
    predicted = _check_labels(names[1], predicted, n_classes, labels.shape, names[0])
    return labels, predicted, _check_mask(mask, labels.shape, names[0]), n_classes


def _confusion_core(labels, predicted, valid, n_classes):
    # entries outside [0, n_classes) (possible only for traced inputs) are dropped, not wrapped
    valid = valid & (labels >= 0) & (labels < n_classes) & (predicted >= 0)
    valid = valid & (predicted < n_classes)
    flat = jnp.where(valid, labels * n_classes + predicted, 0)
    counts = jnp.zeros((n_classes * n_classes,), jnp.int32).at[flat].add(valid.astype(jnp.int32))
    return counts.reshape(n_classes, n_classes)


def _accuracy_core(cm):
    dtype = jnp.result_type(float)
    return jnp.trace(cm).astype(dtype) / jnp.sum(cm).astype(dtype)


def _macro_f1_core(cm):
    dtype = jnp.result_type(float)
    tp = jnp.diagonal(cm).astype(dtype)
    denominator = (jnp.sum(cm, axis=1) + jnp.sum(cm, axis=0)).astype(dtype)  # 2TP + FN + FP
    present = denominator > 0
    f1 = jnp.where(present, 2.0 * tp / jnp.where(present, denominator, 1.0), 0.0)
    return jnp.sum(f1) / jnp.sum(present).astype(dtype)


def _kappa_core(cm):
    dtype = jnp.result_type(float)
    n = jnp.sum(cm)
    rows, cols = jnp.sum(cm, axis=1), jnp.sum(cm, axis=0)
    all_one_class = jnp.any((rows == n) & (cols == n))  # p_e = 1, exactly, in integers
    nf = jnp.maximum(n, 1).astype(dtype)
    p_o = jnp.trace(cm).astype(dtype) / nf
    p_e = jnp.sum((rows.astype(dtype) / nf) * (cols.astype(dtype) / nf))
    denominator = jnp.where(all_one_class, 1.0, 1.0 - p_e)
    kappa = jnp.where(all_one_class, 1.0, (p_o - p_e) / denominator)
    return jnp.where(n > 0, kappa, jnp.nan).astype(dtype)


@partial(jax.jit, static_argnames=("n_classes",))
def _confusion(labels, predicted, valid, n_classes):
    return _confusion_core(labels, predicted, valid, n_classes)


def confusion_matrix(
    labels: Int[ArrayLike, " N"],
    predicted: Int[ArrayLike, " N"],
    n_classes: int,
    mask: Bool[ArrayLike, " N"] | None = None,
) -> Int[Array, "k k"]:
    """Counts of (true, predicted) class pairs: entry [i, j] counts items of class i predicted j.

    Rows are true classes, columns predicted ones, as in scikit-learn. Jittable (``n_classes``
    static) and ``vmap``-able; under tracing, labels outside [0, n_classes) are dropped.

    Args:
        labels: (N,) true classes, integers in [0, n_classes).
        predicted: (N,) predicted classes, integers in [0, n_classes).
        n_classes: number of classes k, ≥ 1 (static).
        mask: (N,) True for the items to count (default: all).

    Returns:
        (k, k) int32 counts; they sum to the number of items counted.
    """
    labels, predicted, valid, n_classes = _pair(labels, predicted, n_classes, mask)
    return _confusion(labels, predicted, valid, n_classes)


def accuracy(
    labels: Int[ArrayLike, "..."],
    predicted: Int[ArrayLike, "..."],
    mask: Bool[ArrayLike, "..."] | None = None,
) -> Float[Array, ""]:
    """Fraction of the items (where ``mask`` is True) whose predicted class is the true one.

    Args:
        labels: (...) true classes, integers.
        predicted: predicted classes, integers of the shape of ``labels``.
        mask: True for the items to count, the shape of ``labels`` (default: all).

    Returns:
        () accuracy in [0, 1]; NaN when no item is counted.
    """
    labels, predicted = jnp.asarray(labels), jnp.asarray(predicted)
    for name, value in (("labels", labels), ("predicted", predicted)):
        if not jnp.issubdtype(value.dtype, jnp.integer):
            raise ValueError(f"{name} must be integers; got dtype {value.dtype}")
    if predicted.shape != labels.shape:
        raise ValueError(f"predicted must have the shape of labels, {labels.shape}; got "
                         f"{predicted.shape}")  # fmt: skip
    return _accuracy(labels, predicted, _check_mask(mask, labels.shape, "labels"))


@jax.jit
def _accuracy(labels, predicted, valid):
    dtype = jnp.result_type(float)
    hits = jnp.sum(valid & (labels == predicted)).astype(dtype)
    return hits / jnp.sum(valid).astype(dtype)


@partial(jax.jit, static_argnames=("n_classes",))
def _macro_f1(labels, predicted, valid, n_classes):
    return _macro_f1_core(_confusion_core(labels, predicted, valid, n_classes))


def macro_f1(
    labels: Int[ArrayLike, " N"],
    predicted: Int[ArrayLike, " N"],
    n_classes: int,
    mask: Bool[ArrayLike, " N"] | None = None,
) -> Float[Array, ""]:
    """Unweighted mean over classes of the F1 score F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c).

    Only classes present in the labels or the predictions (2 TP + FP + FN > 0) enter the mean;
    a class absent from both has no defined F1 and is left out, so a rare defect class that does
    not occur in a context neither helps nor hurts that context's score. (scikit-learn's
    ``f1_score(average="macro", labels=range(k))`` would count it as 0 instead.) A class that
    occurs but is never predicted correctly counts as 0.

    Arguments as :func:`confusion_matrix`. Returns () macro-F1 in [0, 1]; NaN when no item is
    counted.
    """
    labels, predicted, valid, n_classes = _pair(labels, predicted, n_classes, mask)
    return _macro_f1(labels, predicted, valid, n_classes)


@partial(jax.jit, static_argnames=("n_classes",))
def _cohens_kappa(a, b, valid, n_classes):
    return _kappa_core(_confusion_core(a, b, valid, n_classes))


def cohens_kappa(
    a: Int[ArrayLike, " N"],
    b: Int[ArrayLike, " N"],
    n_classes: int,
    mask: Bool[ArrayLike, " N"] | None = None,
) -> Float[Array, ""]:
    """Cohen's κ, chance-corrected agreement between two raters (people or models).

    κ = (p_o − p_e) / (1 − p_e) (Cohen 1960), with p_o = Σ_c n_cc / n the observed agreement and
    p_e = Σ_c (n_c· / n)(n_·c / n) the agreement expected from the raters' marginal frequencies.
    κ = 1 for perfect agreement, 0 for agreement at chance level, < 0 below it. When p_e = 1
    (both raters put every item in the same single class) the ratio is 0/0; since the raters then
    agree on every item (p_o = 1), κ is defined as 1. Symmetric in a and b.

    Args:
        a, b: (N,) classes given by the two raters, integers in [0, n_classes).
        n_classes: number of classes k, ≥ 1 (static).
        mask: (N,) True for the items to count (default: all).

    Returns:
        () κ in [−1, 1]; NaN when no item is counted.
    """
    a, b, valid, n_classes = _pair(a, b, n_classes, mask, names=("a", "b"))
    return _cohens_kappa(a, b, valid, n_classes)


# --------------------------------------------------------------------------------------------
# Classification: calibration


class CalibrationBins(NamedTuple):
    """Reliability-diagram data of :func:`calibration_bins` (B equal-width confidence bins).

    Attributes:
        edges: (B + 1,) bin edges 0, 1/B, …, 1.
        confidence: (B,) mean top-label confidence of the items in each bin (NaN if empty).
        accuracy: (B,) fraction of them whose top label is correct (NaN if empty).
        count: (B,) int32 number of items in each bin.
    """

    edges: Float[Array, " B1"]
    confidence: Float[Array, " B"]
    accuracy: Float[Array, " B"]
    count: Int[Array, " B"]


def _calibration_core(probs, labels, valid, n_bins):
    """Per-bin count, Σ confidence, Σ correct and Σ (correct − confidence)."""
    confidence = jnp.max(probs, axis=-1)
    correct = (jnp.argmax(probs, axis=-1) == labels).astype(probs.dtype)
    index = jnp.clip(jnp.ceil(confidence * n_bins).astype(jnp.int32) - 1, 0, n_bins - 1)
    weight = valid.astype(probs.dtype)
    count = jnp.zeros((n_bins,), jnp.int32).at[index].add(valid.astype(jnp.int32))
    zeros = jnp.zeros((n_bins,), probs.dtype)
    sum_confidence = zeros.at[index].add(weight * confidence)
    sum_correct = zeros.at[index].add(weight * correct)
    sum_gap = zeros.at[index].add(weight * (correct - confidence))  # no cancellation of sums
    return count, sum_confidence, sum_correct, sum_gap


def _ece_core(probs, labels, valid, n_bins):
    count, _, _, gap = _calibration_core(probs, labels, valid, n_bins)
    return jnp.sum(jnp.abs(gap)) / jnp.sum(count).astype(probs.dtype)


def _check_classification(probs, labels, mask, n_bins):
    n_bins = check_int_at_least("n_bins", n_bins, 1)
    probs = _check_probs("probs", probs, min_ndim=2, layout="(N, k)")
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (N, k); got {probs.shape}")
    labels = _check_labels("labels", labels, probs.shape[1], probs.shape[:1], "probs' first axis")
    return probs, labels, _check_mask(mask, labels.shape, "labels"), n_bins


@partial(jax.jit, static_argnames=("n_bins",))
def _ece(probs, labels, valid, n_bins):
    return _ece_core(probs, labels, valid, n_bins)


def expected_calibration_error(
    probs: Float[ArrayLike, "N k"],
    labels: Int[ArrayLike, " N"],
    n_bins: int = 15,
    mask: Bool[ArrayLike, " N"] | None = None,
) -> Float[Array, ""]:
    """Top-label expected calibration error with equal-width confidence bins.

    With confidence c_i = max_c p_ic, prediction ŷ_i = argmax_c p_ic (the first on ties) and
    B_m the items with c_i in ((m − 1)/M, m/M] (c = 0 goes to the first bin),
    ECE = Σ_m (|B_m| / n) |acc(B_m) − conf(B_m)| = (1/n) Σ_m |Σ_{i∈B_m} (1[ŷ_i = y_i] − c_i)|
    (Naeini, Cooper & Hauskrecht 2015; Guo et al. 2017, eq. 3, M = 15). The per-bin sums of
    correct − confidence are accumulated directly, so a well-calibrated set does not lose its
    small gaps to the cancellation of two large sums. Empty bins contribute nothing. The binned
    estimate is biased upwards by sampling noise, of order √(M/n) for a calibrated model.
    Jittable (``n_bins`` static) and ``vmap``-able.

    Args:
        probs: (N, k) predicted class probabilities, rows summing to 1.
        labels: (N,) true classes, integers in [0, k).
        n_bins: number of bins M, ≥ 1 (static).
        mask: (N,) True for the items to count (default: all).

    Returns:
        () ECE in [0, 1]; NaN when no item is counted.
    """
    probs, labels, valid, n_bins = _check_classification(probs, labels, mask, n_bins)
    return _ece(probs, labels, valid, n_bins)


@partial(jax.jit, static_argnames=("n_bins",))
def _calibration_bins(probs, labels, valid, n_bins):
    count, sum_confidence, sum_correct, _ = _calibration_core(probs, labels, valid, n_bins)
    n = count.astype(probs.dtype)
    safe = jnp.where(count > 0, n, 1.0)
    edges = jnp.linspace(0.0, 1.0, n_bins + 1, dtype=probs.dtype)
    confidence = jnp.where(count > 0, sum_confidence / safe, jnp.nan)
    accuracy_ = jnp.where(count > 0, sum_correct / safe, jnp.nan)
    return CalibrationBins(edges, confidence, accuracy_, count)


def calibration_bins(
    probs: Float[ArrayLike, "N k"],
    labels: Int[ArrayLike, " N"],
    n_bins: int = 15,
    mask: Bool[ArrayLike, " N"] | None = None,
) -> CalibrationBins:
    """Reliability-diagram data: per confidence bin, mean confidence, accuracy and count.

    Bins as in :func:`expected_calibration_error`, which equals
    Σ_m count_m |accuracy_m − confidence_m| / Σ_m count_m over the non-empty bins. Plot accuracy
    against confidence (or as bars over ``edges``); a calibrated model lies on the diagonal.

    Args: as :func:`expected_calibration_error`.

    Returns:
        :class:`CalibrationBins` (edges, confidence, accuracy, count), a pytree (``vmap``-able).
    """
    probs, labels, valid, n_bins = _check_classification(probs, labels, mask, n_bins)
    return _calibration_bins(probs, labels, valid, n_bins)


@partial(jax.jit, static_argnames=("n_classes", "n_groups", "n_bins"))
def _grouped_report(probs, labels, groups, valid, n_classes, n_groups, n_bins):
    predicted = jnp.argmax(probs, axis=-1)
    entropy = _entropy(probs)

    def one(g):
        member = valid & ((groups == g) | (g == n_groups))  # row n_groups: every item
        cm = _confusion_core(labels, predicted, member, n_classes)
        n = jnp.sum(cm)
        return {
            "count": n,
            "accuracy": _accuracy_core(cm).astype(probs.dtype),
            "macro_f1": _macro_f1_core(cm).astype(probs.dtype),
            "mean_entropy": jnp.sum(jnp.where(member, entropy, 0.0)) / n.astype(probs.dtype),
            "ece": _ece_core(probs, labels, member, n_bins),
            "confusion": cm,
        }

    return jax.vmap(one)(jnp.arange(n_groups + 1))


def grouped_classification_report(
    probs: Float[ArrayLike, "N k"],
    labels: Int[ArrayLike, " N"],
    groups: Int[ArrayLike, " N"],
    n_classes: int,
    n_groups: int,
    *,
    mask: Bool[ArrayLike, " N"] | None = None,
    n_bins: int = 15,
) -> dict[str, Array]:
    """Classification scores per group (e.g. per context or material id) and over all items.

    Row g < n_groups summarises the items with ``groups == g`` (and ``mask``), the last row
    (index n_groups) all items: the same values as :func:`accuracy`, :func:`macro_f1`,
    :func:`predictive_entropy` (averaged), :func:`expected_calibration_error` and
    :func:`confusion_matrix` called with that mask, with the predicted class argmax_c p_c. All
    rows are computed at once by ``vmap`` over group masks: memory O((G + 1) · (N + k²)), one
    compiled call. A group without items has count 0 and NaN scores.

    Args:
        probs: (N, k) predicted class probabilities, rows summing to 1, k = ``n_classes``.
        labels: (N,) true classes, integers in [0, n_classes).
        groups: (N,) group of each item, integers in [0, n_groups).
        n_classes: number of classes k, ≥ 1 (static).
        n_groups: number of groups G, ≥ 1 (static).
        mask: (N,) True for the items to include (default: all).
        n_bins: confidence bins of the ECE, ≥ 1 (static).

    Returns:
        dict of arrays with a leading axis of G + 1 (the groups, then the overall row):
        ``count`` (int32), ``accuracy``, ``macro_f1``, ``mean_entropy`` (nats), ``ece``, and
        ``confusion`` (G + 1, k, k) int32.
    """
    n_classes = check_int_at_least("n_classes", n_classes, 1)
    n_groups = check_int_at_least("n_groups", n_groups, 1)
    probs, labels, valid, n_bins = _check_classification(probs, labels, mask, n_bins)
    if probs.shape[1] != n_classes:
        raise ValueError(f"probs must have n_classes={n_classes} columns; got shape "
                         f"{probs.shape}")  # fmt: skip
    groups = jnp.asarray(groups)
    if not jnp.issubdtype(groups.dtype, jnp.integer):
        raise ValueError(f"groups must be integers; got dtype {groups.dtype}")
    if groups.shape != labels.shape:
        raise ValueError(f"groups must have the shape of labels, {labels.shape}; got "
                         f"{groups.shape}")  # fmt: skip
    if is_concrete(groups) and groups.size:
        lo, hi = int(np.min(groups)), int(np.max(groups))
        if lo < 0 or hi >= n_groups:
            raise ValueError(f"groups must lie in [0, {n_groups - 1}] (n_groups={n_groups}); got "
                             f"values from {lo} to {hi}")  # fmt: skip
    return _grouped_report(probs, labels, groups, valid, n_classes, n_groups, n_bins)


# --------------------------------------------------------------------------------------------
# Dose-efficiency curve (STEMGym)


def _check_episode(dose_fraction, score, mask):
    dose_fraction, score = _float(dose_fraction), _float(score)
    if dose_fraction.ndim != 1 or dose_fraction.shape[0] < 1:
        raise ValueError(f"dose_fraction must have shape (T,) with T ≥ 1 steps; got "
                         f"{dose_fraction.shape}")  # fmt: skip
    if score.shape != dose_fraction.shape:
        raise ValueError(f"score must have the shape of dose_fraction, {dose_fraction.shape}; "
                         f"got {score.shape}")  # fmt: skip
    valid = _check_mask(mask, dose_fraction.shape, "dose_fraction")
    if is_concrete((dose_fraction, score, valid)):
        keep = np.asarray(valid)
        check_in_range("dose_fraction", np.asarray(dose_fraction)[keep], 0.0, 1.0)
        check_in_range("score", np.asarray(score)[keep], 0.0, 1.0)
        steps = np.diff(np.asarray(dose_fraction, dtype=float)[keep])
        if np.any(steps < 0):
            at = int(np.argmax(steps < 0))
            raise ValueError(f"dose_fraction must be non-decreasing over the steps kept by mask "
                             f"(cumulative dose); it falls by {-steps[at]:.3g} after kept step "
                             f"{at}")  # fmt: skip
    dtype = jnp.result_type(dose_fraction, score)
    return dose_fraction.astype(dtype), score.astype(dtype), valid


@jax.jit
def _dec_curve(dose, score, valid, grid):
    t = dose.shape[0]
    steps = jnp.arange(t)
    reached = valid[None, :] & (dose[None, :] <= grid[:, None])  # (G, T)
    lo = jnp.max(jnp.where(reached, steps, -1), axis=1)  # last kept step with dose ≤ f
    later = valid[None, :] & (steps[None, :] > lo[:, None])
    hi = jnp.min(jnp.where(later, steps, t), axis=1)  # the next kept step (t: none)
    lo_i, hi_i = jnp.maximum(lo, 0), jnp.minimum(hi, t - 1)
    d_lo, s_lo, d_hi, s_hi = dose[lo_i], score[lo_i], dose[hi_i], score[hi_i]
    span = d_hi - d_lo
    frac = jnp.clip((grid - d_lo) / jnp.where(span > 0, span, 1.0), 0.0, 1.0)
    inside = s_lo + (s_hi - s_lo) * frac
    return jnp.where(lo < 0, 0.0, jnp.where(hi >= t, s_lo, inside))


def dose_efficiency_curve(
    dose_fraction: Float[ArrayLike, " T"],
    score: Float[ArrayLike, " T"],
    grid: Float[ArrayLike, " G"],
    mask: Bool[ArrayLike, " T"] | None = None,
) -> Float[Array, " G"]:
    """STEMGym dose-efficiency curve of one episode, evaluated at the dose fractions ``grid``.

    An episode records, after each step i, the cumulative dose spent as a fraction d_i of the
    budget and the task score s_i in [0, 1]. The curve S(f), f in [0, 1], is

    - 0 for f < d_first (no score before the first measurement),
    - the straight line between consecutive kept steps (d_i, s_i) and (d_j, s_j) for
      d_i ≤ f < d_j (the trapezoid rule's interpolant, so :func:`dec_auc` is its exact area),
    - s_last for f ≥ d_last: an agent that stops early keeps its last score up to the full
      budget (it is neither penalised nor rewarded for the dose it did not spend).

    At a dose reached by several steps (steps that cost no dose) S jumps to the score of the last
    of them, so S is right-continuous. Memory O(G · T); jittable and ``vmap``-able over episodes.

    Args:
        dose_fraction: (T,) cumulative dose / budget after each step, non-decreasing in [0, 1].
        score: (T,) task score after each step, in [0, 1].
        grid: (G,) dose fractions in [0, 1] at which to evaluate the curve.
        mask: (T,) True for the steps of the episode (False: unused capacity of a fixed-size
            buffer, e.g. after the episode ended); default all.

    Returns:
        (G,) score in [0, 1].
    """
    dose, score, valid = _check_episode(dose_fraction, score, mask)
    grid = _float(grid)
    if grid.ndim != 1:
        raise ValueError(f"grid must have shape (G,); got {grid.shape}")
    check_in_range("grid", grid, 0.0, 1.0)
    dtype = jnp.result_type(dose, grid)
    return _dec_curve(dose.astype(dtype), score.astype(dtype), valid, grid.astype(dtype))


@jax.jit
def _dec_auc(dose, score, valid):
    t = dose.shape[0]
    steps = jnp.arange(t)
    last_upto = jax.lax.cummax(jnp.where(valid, steps, -1))  # last kept step ≤ i
    previous = jnp.concatenate([jnp.full((1,), -1, last_upto.dtype), last_upto[:-1]])
    p = jnp.maximum(previous, 0)
    joined = valid & (previous >= 0)
    segments = jnp.where(joined, (dose - dose[p]) * (score + score[p]) * 0.5, 0.0)
    last = last_upto[-1]
    i = jnp.maximum(last, 0)
    hold = jnp.where(last >= 0, score[i] * (1.0 - dose[i]), 0.0)
    return jnp.sum(segments) + hold


def dec_auc(
    dose_fraction: Float[ArrayLike, " T"],
    score: Float[ArrayLike, " T"],
    mask: Bool[ArrayLike, " T"] | None = None,
) -> Float[Array, ""]:
    """DEC-AUC: the area under the dose-efficiency curve of one episode on [0, 1].

    The exact area of :func:`dose_efficiency_curve`: the trapezoid rule between consecutive kept
    steps, nothing before the first step, and a rectangle s_last · (1 − d_last) for the unspent
    budget,

        AUC = Σ_{consecutive kept i < j} (d_j − d_i)(s_i + s_j)/2 + s_last (1 − d_last).

    Closed forms: a linear ramp s_i = d_i from d = 0 to 1 gives 1/2; score 1 from dose 0 gives 1;
    scores 1/4, 1/2, 3/4, 1 at doses 0.1, 0.2, 0.3, 0.4 and then stopping give
    0.1 · (3/8 + 5/8 + 7/8) + 0.6 = 0.7875. An episode with no kept step gives 0. Jittable and
    ``vmap``-able over episodes.

    Args: as :func:`dose_efficiency_curve`, without ``grid``.

    Returns:
        () area in [0, 1] (score × budget fraction).
    """
    dose, score, valid = _check_episode(dose_fraction, score, mask)
    return _dec_auc(dose, score, valid)
