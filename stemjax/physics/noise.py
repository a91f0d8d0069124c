"""Shot noise and detector readout.

``poisson_counts`` draws exact Poisson counts; ``poisson_relaxed`` and
``poisson_straight_through`` give samples whose gradient with respect to the mean is defined,
for fitting and design by gradient descent. Counts are returned in the float dtype of the mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from stemjax._validation import check_finite, check_nonnegative, check_positive


def _as_float(value) -> Array:
    return jnp.asarray(value, jnp.result_type(value, float))


def _safe_sqrt(x: Array) -> Array:
    """√x with a finite gradient everywhere (the gradient of the 0 branch is 0 at x ≤ 0)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def poisson_counts(key: PRNGKeyArray, mean: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """Exact Poisson counts with the given means, as floats.

    Not differentiable with respect to ``mean`` (see :func:`poisson_straight_through`).

    Args:
        key: PRNG key.
        mean: expected counts (≥ 0), any shape; below 2³¹ (the counts are drawn as integers).

    Returns:
        Counts, same shape and float dtype as ``mean``.
    """
    check_nonnegative("mean", mean)
    return _poisson(key, jax.lax.stop_gradient(_as_float(mean)))


@jax.jit
def _poisson(key: PRNGKeyArray, lam: Array) -> Array:
    int_dtype = jnp.int64 if lam.dtype == jnp.float64 else jnp.int32
    return jax.random.poisson(key, lam, lam.shape, int_dtype).astype(lam.dtype)


def poisson_relaxed(key: PRNGKeyArray, mean: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """Gaussian relaxation of Poisson counts: ``mean + √mean · ε``, ε ~ N(0, 1).

    Same mean and variance as Poisson, continuous and differentiable in ``mean``:
    ∂/∂mean = 1 + ε / (2 √mean) (1 at mean = 0). Samples can be negative for small means.

    Args:
        key: PRNG key.
        mean: expected counts (≥ 0), any shape.

    Returns:
        Relaxed counts, same shape and float dtype as ``mean``.
    """
    check_nonnegative("mean", mean)
    return _relaxed(key, _as_float(mean))


@jax.jit
def _relaxed(key: PRNGKeyArray, lam: Array) -> Array:
    eps = jax.random.normal(key, lam.shape, lam.dtype)
    return lam + _safe_sqrt(lam) * eps


def poisson_straight_through(
    key: PRNGKeyArray, mean: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Exact Poisson counts forward; the Gaussian relaxation's gradient backward.

    The forward value is ``poisson_counts(key, mean)`` bit for bit. The backward pass uses the
    reparameterised derivative of ``mean + √mean · ε`` at the ε that reproduces the drawn count
    c, ε = (c − mean)/√mean, i.e. ∂c/∂mean = 1 + (c − mean)/(2 mean) = (c + mean)/(2 mean),
    whose expectation over c is 1 = ∂E[c]/∂mean (1 at mean = 0).

    Args:
        key: PRNG key.
        mean: expected counts (≥ 0), any shape.

    Returns:
        Counts, same shape and float dtype as ``mean``.
    """
    check_nonnegative("mean", mean)
    lam = _as_float(mean)
    # Drawn outside the custom derivative so the sampler is not re-traced under grad.
    counts = _poisson(key, jax.lax.stop_gradient(lam))
    return _with_relaxed_gradient(lam, counts)


@jax.custom_jvp
def _with_relaxed_gradient(lam: Array, counts: Array) -> Array:
    """``counts``, with derivative (counts + lam)/(2 lam) with respect to ``lam`` (1 at 0)."""
    return counts


@_with_relaxed_gradient.defjvp
def _with_relaxed_gradient_jvp(primals, tangents):
    lam, counts = primals
    positive = lam > 0
    safe = jnp.where(positive, lam, 1.0)
    slope = jnp.where(positive, (counts + lam) / (2.0 * safe), 1.0)
    return counts, slope * tangents[0]


def detector_readout(
    key: PRNGKeyArray,
    counts: Float[ArrayLike, "..."],
    gain: Float[ArrayLike, ""] = 1.0,
    read_noise: Float[ArrayLike, ""] = 0.0,
    offset: Float[ArrayLike, ""] = 0.0,
) -> Float[Array, "..."]:
    """Recorded signal ``gain · counts + offset + read_noise · N(0, 1)``.

    Args:
        key: PRNG key for the read noise.
        counts: detected electrons, any shape.
        gain: output units per electron (> 0).
        read_noise: standard deviation of the additive Gaussian noise, output units (≥ 0).
        offset: constant added to every reading (dark level), output units.

    Returns:
        Signal, shape of ``counts`` broadcast with the parameters, float.
    """
    check_positive("gain", gain)
    check_nonnegative("read_noise", read_noise)
    check_finite("offset", offset)
    dtype = jnp.result_type(counts, gain, read_noise, offset, float)
    as_float = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return _readout(key, *map(as_float, (counts, gain, read_noise, offset)))


@jax.jit
def _readout(key: PRNGKeyArray, counts: Array, gain: Array, read_noise: Array, offset: Array):
    signal = gain * counts + offset
    noise = jax.random.normal(key, signal.shape, signal.dtype)
    return signal + read_noise * noise


__all__ = ["detector_readout", "poisson_counts", "poisson_relaxed", "poisson_straight_through"]
