"""Campaign metrics: learning curves and coverage in patch, feature and target space.

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
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from stemjax._validation import check_finite, check_int_at_least, is_concrete
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
