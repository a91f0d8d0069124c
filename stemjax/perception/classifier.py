"""Image-only and context-conditioned defect classifiers, deep ensembles and calibration.

Network (:class:`DefectCNN`), for a (P, P) patch standardised to zero mean and unit variance:

    conv 3×3 (1 → w) → FiLM → ReLU → max-pool 2 → conv 3×3 (w → 2w) → FiLM → ReLU
    → max-pool 2 → conv 3×3 (2w → 2w) → FiLM → ReLU → flatten → linear → ReLU → linear (K)

With ``use_context`` the context vector (:data:`~stemjax.perception.patches.CONTEXT_FEATURES`),
scaled to [−1, 1] over the training ranges, passes through an MLP whose output gives every
convolution a per-channel scale and shift, h ← (1 + γ(c)) h + β(c) (FiLM: Perez et al., AAAI
2018), and is also concatenated to the flattened features before the head. Without it the
FiLM layers are absent and the network sees the image alone.

Uncertainty: a deep ensemble (Lakshminarayanan et al., NeurIPS 2017) of M networks with
independent initialisations, trained together under ``vmap`` by Adam (optax) on one stream of
simulated batches (fresh patches every step, so the members never see the same patch twice); the predictive distribution is the mean of the members'
softmax(logits / T), with one temperature T fitted on held-out simulations by minimising the
negative log-likelihood (temperature scaling: Guo et al., ICML 2017). A numpyro alternative,
a Bayesian last layer fitted by SVI, is in :mod:`stemjax.perception.bayes_head`.

Training draws every batch afresh from :func:`~stemjax.perception.patches.sample_patches`
inside the compiled training step, so no data set is stored.
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from stemjax._validation import check_int_at_least, check_positive
from stemjax.perception.patches import (
    CLASSES,
    CONTEXT_FEATURES,
    DOPANTS,
    HOSTS,
    IMAGING_CONTEXTS,
    PATCH_SIZE,
    PatchBatch,
    PatchDomain,
    context_vector,
    sample_patches,
)
from stemjax.metrics import predictive_entropy
from stemjax.models.dkl import MLPFeatures
from stemjax.models.layers import maxpool2, patches3x3, uniform_layers
from stemjax.posterior import Posterior

N_CONTEXT = len(CONTEXT_FEATURES)


def context_range(domain: PatchDomain) -> np.ndarray:
    """(8, 2) low and high of each context feature over ``domain``'s cases and doses."""
    cases = domain.cases()
    host = np.array([HOSTS.index(c[0]) for c in cases])
    dopant = np.array([DOPANTS.index(c[1]) for c in cases])
    imaging = np.array([list(IMAGING_CONTEXTS).index(c[2]) for c in cases])
    low = np.asarray(context_vector(host, dopant, imaging, domain.dose_range[0]))
    high = np.asarray(context_vector(host, dopant, imaging, domain.dose_range[1]))
    return np.stack([np.minimum(low, high).min(0), np.maximum(low, high).max(0)], -1)


class DefectCNN(eqx.Module):
    """One classifier network (see the module docstring): (N, P, P) patches → (N, K) logits.

    Attributes:
        conv_w, conv_b: weights (9·c_in, c_out) and biases (c_out,) of the three 3×3
            convolutions.
        film: MLP context (8) → (γ, β) of every convolution channel, or None (image only).
        head: MLP features (+ scaled context) → K logits (one hidden ReLU layer).
        context_low, context_high: (8,) training range of each context feature (not trained).
    """

    conv_w: tuple[Float[Array, "a b"], ...]
    conv_b: tuple[Float[Array, " b"], ...]
    film: MLPFeatures | None
    head: MLPFeatures
    context_low: Float[Array, "8"]
    context_high: Float[Array, "8"]

    def __init__(self, key: PRNGKeyArray, use_context: bool, context_range: ArrayLike,
                 width: int = 16, hidden: int = 64):  # fmt: skip
        """Args: ``key`` for the weights; ``use_context``; ``context_range`` (8, 2) low/high of
        each feature (:func:`context_range`); ``width`` w channels; ``hidden`` head units."""
        check_int_at_least("width", width, 1)
        check_int_at_least("hidden", hidden, 1)
        dtype = jnp.result_type(float)
        key_conv, key_film, key_head = jax.random.split(key, 3)
        channels = (1, width, 2 * width, 2 * width)
        layers = tuple(item for a, b in zip(channels, channels[1:])
                       for item in (((9 * a, b), 9 * a), ((b,), 9 * a)))  # fmt: skip
        arrays = uniform_layers(key_conv, layers, dtype)
        self.conv_w, self.conv_b = tuple(arrays[0::2]), tuple(arrays[1::2])
        self.film = (MLPFeatures(key_film, N_CONTEXT, (64,), 2 * sum(channels[1:]), "relu")
                     if use_context else None)  # fmt: skip
        side = (PATCH_SIZE // 2) // 2
        features = channels[-1] * side * side + (N_CONTEXT if use_context else 0)
        self.head = MLPFeatures(key_head, features, (hidden,), len(CLASSES), "relu")
        bounds = np.asarray(context_range, float)
        if bounds.shape != (N_CONTEXT, 2):
            raise ValueError(f"context_range must have shape ({N_CONTEXT}, 2); got {bounds.shape}")
        self.context_low = jnp.asarray(bounds[:, 0], dtype)
        self.context_high = jnp.asarray(bounds[:, 1], dtype)

    @property
    def use_context(self) -> bool:
        return self.film is not None

    def scaled_context(self, context: Float[Array, "N 8"]) -> Float[Array, "N 8"]:
        """Context mapped to [−1, 1] over the training range (0 for a constant feature)."""
        low, high = jax.lax.stop_gradient((self.context_low, self.context_high))  # not trained
        span = high - low
        return jnp.where(span > 0, 2 * (context - low) / jnp.where(span > 0, span, 1) - 1, 0.0)

    def embed(self, images: Float[Array, "N P P"], context: Float[Array, "N 8"]) -> Array:
        """(N, hidden) last hidden layer (after its ReLU), the input of the final linear map."""
        mean = images.mean(axis=(1, 2), keepdims=True)
        std = images.std(axis=(1, 2), keepdims=True)
        h = ((images - mean) / (std + 1e-6))[..., None].astype(self.conv_w[0].dtype)
        c = self.scaled_context(context.astype(h.dtype))
        film = self.film(c) if self.film is not None else None
        start = 0
        for i, (w, b) in enumerate(zip(self.conv_w, self.conv_b)):
            h = patches3x3(h) @ w + b
            if film is not None:
                n = b.shape[0]
                gamma, beta = film[:, start : start + n], film[:, start + n : start + 2 * n]
                start += 2 * n
                h = h * (1 + gamma[:, None, None]) + beta[:, None, None]
            h = jax.nn.relu(h)
            if i < 2:
                h = maxpool2(h)
        features = h.reshape(h.shape[0], -1)
        if film is not None:
            features = jnp.concatenate([features, c], -1)
        return jax.nn.relu(features @ self.head.weights[0] + self.head.biases[0])

    def __call__(self, images: Float[Array, "N P P"], context: Float[Array, "N 8"]) -> Array:
        """(N, K) logits of (N, P, P) patches in any intensity units with (N, 8) contexts."""
        return self.embed(images, context) @ self.head.weights[-1] + self.head.biases[-1]


class Ensemble(eqx.Module):
    """M classifier networks stacked on a leading axis, and the softmax temperature.

    Attributes:
        members: DefectCNN whose array leaves have a leading axis of size M.
        log_temperature: () log T; 0 until :func:`fit_temperature`.
    """

    members: DefectCNN
    log_temperature: Float[Array, ""]

    @property
    def size(self) -> int:
        return int(self.members.context_low.shape[0])

    @property
    def use_context(self) -> bool:
        return self.members.use_context


def init_ensemble(key: PRNGKeyArray, domain: PatchDomain, members: int = 4,
                  use_context: bool = True, width: int = 16, hidden: int = 64) -> Ensemble:  # fmt: skip
    """An untrained ensemble of ``members`` networks for patches drawn from ``domain``."""
    check_int_at_least("members", members, 1)
    bounds = context_range(domain)
    make = lambda k: DefectCNN(k, use_context, bounds, width, hidden)  # noqa: E731
    stacked = jax.tree.map(lambda *x: jnp.stack(x),
                           *[make(k) for k in jax.random.split(key, members)])  # fmt: skip
    return Ensemble(stacked, jnp.zeros((), jnp.result_type(float)))


def ensemble_logits(ensemble: Ensemble, images, context) -> Float[Array, "M N K"]:
    """(M, N, K) logits of every member (before temperature) for (N, P, P) patches."""
    return jax.vmap(lambda member: member(images, context))(ensemble.members)


class ClassPosterior(eqx.Module):
    """A classifier's belief about the class of N sites.

    Attributes:
        probs: (N, K) predictive class probabilities (mean over members).
        member_probs: (M, N, K) each member's (or posterior sample's) probabilities.
    """

    probs: Float[Array, "N K"]
    member_probs: Float[Array, "M N K"]

    @property
    def entropy(self) -> Float[Array, " N"]:
        """(N,) predictive entropy, nats."""
        return predictive_entropy(self.probs)

    @property
    def predicted(self) -> Array:
        """(N,) most probable class."""
        return jnp.argmax(self.probs, -1)

    def target(self, class_index: int) -> Posterior:
        """The belief that each site holds class ``class_index``, as the acquisition
        functions take it: mean P(class), variance of P(class) over members, and the members
        as (M, N) samples (for Thompson sampling)."""
        k = self.probs.shape[-1]
        if not 0 <= int(class_index) < k:
            raise ValueError(f"class_index must be in [0, {k - 1}]; got {class_index}")
        samples = self.member_probs[..., class_index]
        return Posterior(self.probs[:, class_index], jnp.var(samples, axis=0), samples)


def check_patch_inputs(model, images, context) -> tuple[Array, Array]:
    """Validated (N, P, P) patches and (N, 8) contexts for ``model`` (an Ensemble or a
    BayesianLastLayer) as arrays: ValueError for wrong shapes or non-finite values, a warning
    for a context outside the model's training range."""
    images = jnp.asarray(images, jnp.result_type(float))
    context = jnp.asarray(context, images.dtype)
    if images.ndim != 3 or images.shape[1:] != (PATCH_SIZE, PATCH_SIZE):
        raise ValueError(f"images must have shape (N, {PATCH_SIZE}, {PATCH_SIZE}) (patches "
                         f"sampled every 0.2 Å); got {images.shape}")  # fmt: skip
    if context.shape != (images.shape[0], N_CONTEXT):
        raise ValueError(f"context must have shape ({images.shape[0]}, {N_CONTEXT}) "
                         f"({', '.join(CONTEXT_FEATURES)}); got {context.shape}")  # fmt: skip
    bad = ~np.isfinite(np.asarray(images)).reshape(images.shape[0], -1).all(1)
    if bad.any():
        raise ValueError(f"images must be finite; patches {np.flatnonzero(bad)[:10].tolist()} "
                         "hold NaN or inf pixels")  # fmt: skip
    if not np.isfinite(np.asarray(context)).all():
        raise ValueError("context must be finite")
    if model.use_context:
        network = model.members if isinstance(model, Ensemble) else model.network
        low = np.asarray(network.context_low).reshape(-1, N_CONTEXT)[0]
        high = np.asarray(network.context_high).reshape(-1, N_CONTEXT)[0]
        c = np.asarray(context)
        tolerance = 1e-3 * np.maximum(high - low, 1.0)
        outside = (c < low - tolerance) | (c > high + tolerance)
        if outside.any():
            names = [CONTEXT_FEATURES[i] for i in np.flatnonzero(outside.any(0))]
            warnings.warn(
                f"context outside the trained range in {', '.join(names)} "
                f"(trained: {', '.join(f'{n} [{low[i]:g}, {high[i]:g}]' for i, n in enumerate(CONTEXT_FEATURES) if n in names)}); "  # noqa: E501
                "the prediction is an extrapolation",
                stacklevel=3,
            )
    return images, context


def predict(ensemble: Ensemble, images: ArrayLike, context: ArrayLike) -> ClassPosterior:
    """Class posterior of (N, P, P) patches (any intensity units) with (N, 8) contexts.

    Raises ValueError for a patch of the wrong size or NaN pixels; warns when a context lies
    outside the range the ensemble was trained on (the prediction is an extrapolation). The
    image-only ensemble ignores the context (pass zeros of shape (N, 8) if there is none).
    """
    images, context = check_patch_inputs(ensemble, images, context)
    return _predict(ensemble, images, context)


@eqx.filter_jit
def _predict(ensemble: Ensemble, images, context) -> ClassPosterior:
    logits = ensemble_logits(ensemble, images, context) / jnp.exp(ensemble.log_temperature)
    member_probs = jax.nn.softmax(logits, -1)
    return ClassPosterior(member_probs.mean(0), member_probs)


# --------------------------------------------------------------------------------------------
# training


class TrainingLog(NamedTuple):
    """Per-step mean (over members) training cross-entropy, nats, and accuracy."""

    loss: np.ndarray
    accuracy: np.ndarray


def train_ensemble(
    key: PRNGKeyArray,
    ensemble: Ensemble,
    domain: PatchDomain,
    steps: int = 1500,
    batch_per_imaging: int = 32,
    learning_rate: float = 3e-3,
    chunk: int = 100,
) -> tuple[Ensemble, TrainingLog]:
    """Train every member on one stream of simulated batches from ``domain``.

    Each step draws ``batch_per_imaging`` patches per imaging context; every member takes
    the cross-entropy gradient and an Adam step (learning rate decayed by a cosine schedule to
    1 % at ``steps``). Runs in compiled chunks of ``chunk`` steps; the same key gives the same
    ensemble.

    Returns:
        The trained ensemble (temperature unchanged) and the per-step training log.
    """
    check_int_at_least("steps", steps, 1)
    check_int_at_least("batch_per_imaging", batch_per_imaging, 1)
    check_int_at_least("chunk", chunk, 1)
    check_positive("learning_rate", learning_rate)
    optimizer = _optimizer(float(learning_rate), int(steps))
    params, static = eqx.partition(ensemble.members, eqx.is_inexact_array)
    opt_state = jax.vmap(optimizer.init)(params)
    losses, accuracies = [], []
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        keys = jax.random.split(jax.random.fold_in(key, done), n)
        params, opt_state, loss, accuracy = _train_chunk(
            params, opt_state, keys, static, domain, batch_per_imaging, optimizer
        )
        losses.append(np.asarray(loss))
        accuracies.append(np.asarray(accuracy))
        done += n
    members = eqx.combine(params, static)
    return (eqx.tree_at(lambda e: e.members, ensemble, members),
            TrainingLog(np.concatenate(losses), np.concatenate(accuracies)))  # fmt: skip


@functools.cache
def _optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    """Adam with a cosine decay to 1 % (one object per setting, so compiled chunks are reused)."""
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.01))


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _train_chunk(params, opt_state, keys, static, domain, batch_per_imaging, optimizer):
    def member_step(p, state, batch):
        def loss_fn(p):
            logits = eqx.combine(p, static)(batch.images, batch.context)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels).mean()
            return loss, jnp.mean(jnp.argmax(logits, -1) == batch.labels)

        (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
        updates, state = optimizer.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss, accuracy

    def step(carry, key):
        p, state = carry
        batch = sample_patches(key, domain, batch_per_imaging)
        p, state, loss, accuracy = jax.vmap(member_step, (0, 0, None))(p, state, batch)
        return (p, state), (loss.mean(), accuracy.mean())

    (params, opt_state), (loss, accuracy) = jax.lax.scan(step, (params, opt_state), keys)
    return params, opt_state, loss, accuracy


def fit_temperature(ensemble: Ensemble, batch: PatchBatch) -> Ensemble:
    """The ensemble with T fitted to minimise the negative log-likelihood of ``batch``
    under the ensemble-mean probabilities (golden-section search over log T in [−3, 3])."""
    images, context = check_patch_inputs(ensemble, batch.images, batch.context)
    logits = eqx.filter_jit(ensemble_logits)(ensemble, images, context)
    labels = jnp.asarray(batch.labels)

    def nll(log_t):
        p = jax.nn.softmax(logits / jnp.exp(log_t), -1).mean(0)
        picked = jnp.take_along_axis(p, labels[:, None], -1)[:, 0]
        return -jnp.mean(jnp.log(jnp.maximum(picked, 1e-30)))

    nll = jax.jit(nll)
    low, high = -3.0, 3.0
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if float(nll(a)) < float(nll(b)):
            high = b
        else:
            low = a
    log_t = jnp.asarray(0.5 * (low + high), ensemble.log_temperature.dtype)
    return eqx.tree_at(lambda e: e.log_temperature, ensemble, log_t)


# --------------------------------------------------------------------------------------------
# saving


def save_ensemble(path: str | Path, ensemble: Ensemble) -> None:
    """Write the ensemble's arrays with ``equinox.tree_serialise_leaves`` (no pickle)."""
    eqx.tree_serialise_leaves(path, ensemble)


def load_ensemble(path: str | Path, domain: PatchDomain, members: int, use_context: bool,
                  width: int = 16, hidden: int = 64) -> Ensemble:  # fmt: skip
    """Read an ensemble saved by :func:`save_ensemble`; the other arguments must be those it
    was built with."""
    like = init_ensemble(jax.random.key(0), domain, members, use_context, width, hidden)
    return eqx.tree_deserialise_leaves(path, like)
