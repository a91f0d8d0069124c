"""A small variational autoencoder for image patches (Kingma & Welling, ICLR 2014).

Used for the feature-space coverage of paper 003 (S2b): a VAE with a 2-D latent is trained on
all patches of a world, and each patch is summarised by its latent mean.

- Encoder: flattened patch (h·w) → MLP → latent mean μ and log-variance log s² (q each).
- Decoder: latent z (q) → MLP → h·w pixel means (``"gaussian"``) or logits (``"bernoulli"``).
- Loss: the negative evidence lower bound per patch,
  −ELBO = −E_q[log p(x | z)] + KL(N(μ, s²) ‖ N(0, 1)), with one reparameterised draw
  z = μ + s·ε and the closed-form KL ½ Σ (s² + μ² − 1 − log s²).
- Gaussian likelihood: p(x | z) = N(x; decoder(z), σ² I) with one learned noise variance σ²
  (kept in [e⁻⁹, e⁵]); meant for standardised data (zero mean, unit variance over the set).
  Bernoulli likelihood: for data in [0, 1] (pixel intensities as probabilities).

Training (:func:`train_vae`) runs Adam (optax) inside one ``lax.scan`` on minibatches drawn
with replacement from the key (all draws made up front: steps × batch × (1 + q) uniforms).
The defaults train on 1225 patches of 16 × 16 pixels in a few seconds on two CPU cores
(compilation included).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from stemjax._validation import check_finite, check_in_range, check_int_at_least, check_positive
from stemjax.models.dkl import MLPFeatures
from stemjax.models.fit import adam
from stemjax.models.kernels import float_dtype

LIKELIHOODS = ("gaussian", "bernoulli")
_LOG_NOISE_RANGE = (-9.0, 5.0)


class VAE(eqx.Module):
    """Encoder and decoder MLPs of a patch VAE, and the Gaussian noise log-variance.

    Build one with :func:`init_vae`. Attributes:
        encoder: MLP h·w → 2q (latent mean, then latent log-variance).
        decoder: MLP q → h·w (pixel means, or logits for the Bernoulli likelihood).
        log_noise: () log σ² of the Gaussian likelihood (unused for Bernoulli), in data units².
        patch_shape: (h, w), pixels (static).
        latent_dim: q (static).
        likelihood: ``"gaussian"`` or ``"bernoulli"`` (static).
    """

    encoder: MLPFeatures
    decoder: MLPFeatures
    log_noise: Float[Array, ""]
    patch_shape: tuple[int, int] = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    likelihood: str = eqx.field(static=True)


def init_vae(
    key: PRNGKeyArray,
    patch_shape: tuple[int, int],
    latent_dim: int = 2,
    *,
    hidden: tuple[int, ...] = (64, 64),
    activation: str = "silu",
    likelihood: str = "gaussian",
    dtype=None,
) -> VAE:
    """A freshly initialised :class:`VAE` for (h, w) patches.

    Both MLPs are :class:`~stemjax.models.dkl.MLPFeatures` (weights uniform in ±1/√fan-in); the
    decoder mirrors the encoder's hidden widths.

    Args:
        key: PRNG key of the initial weights.
        patch_shape: (h, w) patch size in pixels, both ≥ 1.
        latent_dim: q, the latent size, ≥ 1 (feature-space coverage: 2).
        hidden: hidden-layer widths of the encoder (reversed for the decoder), each ≥ 1.
        activation: ``"silu"`` (default), ``"relu"``, ``"gelu"`` or ``"tanh"``.
        likelihood: ``"gaussian"`` (standardised data) or ``"bernoulli"`` (data in [0, 1]).
        dtype: float dtype of the weights (default: JAX's default float).
    """
    shape = tuple(patch_shape)
    if len(shape) != 2:
        raise ValueError(f"patch_shape must be (h, w); got {patch_shape!r}")
    h, w = (check_int_at_least("patch_shape", s, 1) for s in shape)
    q = check_int_at_least("latent_dim", latent_dim, 1)
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}; got {likelihood!r}")
    dtype = jnp.dtype(dtype or float_dtype())
    hidden = tuple(hidden)
    k_enc, k_dec = jax.random.split(key)
    encoder = MLPFeatures(k_enc, h * w, hidden, 2 * q, activation, dtype=dtype)
    decoder = MLPFeatures(k_dec, q, hidden[::-1], h * w, activation, dtype=dtype)
    return VAE(encoder, decoder, jnp.zeros((), dtype), (h, w), q, likelihood)


def _check_patches(vae: VAE, patches) -> Array:
    patches = jnp.asarray(patches)
    patches = patches.astype(jnp.result_type(patches, float))
    if patches.ndim != 3 or patches.shape[1:] != vae.patch_shape:
        h, w = vae.patch_shape
        raise ValueError(f"patches must have shape (N, {h}, {w}); got {patches.shape}")
    check_finite("patches", patches)
    if vae.likelihood == "bernoulli":
        check_in_range("patches", patches, 0.0, 1.0)
    return patches


@eqx.filter_jit
def _encode(vae: VAE, flat):
    out = vae.encoder(flat.astype(vae.log_noise.dtype))
    mean, log_var = jnp.split(out, 2, axis=-1)
    return mean, jnp.clip(log_var, -12.0, 8.0)


def encode(
    vae: VAE, patches: Float[ArrayLike, "N h w"]
) -> tuple[Float[Array, "N q"], Float[Array, "N q"]]:
    """Latent mean μ (N, q) and log-variance log s² (N, q) of each patch (N, h, w)."""
    patches = _check_patches(vae, patches)
    return _encode(vae, patches.reshape(patches.shape[0], -1))


def decode(vae: VAE, latents: Float[ArrayLike, "N q"]) -> Float[Array, "N h w"]:
    """Reconstructed patches (N, h, w) of latents (N, q): the pixel means (Gaussian) or the
    pixel probabilities (Bernoulli)."""
    latents = jnp.asarray(latents, vae.log_noise.dtype)
    if latents.ndim != 2 or latents.shape[1] != vae.latent_dim:
        raise ValueError(f"latents must have shape (N, {vae.latent_dim}); got {latents.shape}")
    return _decode(vae, latents)


@eqx.filter_jit
def _decode(vae: VAE, latents):
    out = vae.decoder(latents)
    if vae.likelihood == "bernoulli":
        out = jax.nn.sigmoid(out)
    return out.reshape(latents.shape[0], *vae.patch_shape)


@eqx.filter_jit
def _negative_elbo(vae: VAE, flat, noise):
    """(n,) −ELBO of each flattened patch (n, h·w), one reparameterised draw each from the
    standard-normal ``noise`` (n, q)."""
    mean, log_var = _encode(vae, flat)
    z = mean + jnp.exp(0.5 * log_var) * noise.astype(mean.dtype)
    out = vae.decoder(z)
    x = flat.astype(out.dtype)
    if vae.likelihood == "bernoulli":
        log_lik = jnp.sum(x * jax.nn.log_sigmoid(out) + (1 - x) * jax.nn.log_sigmoid(-out), -1)
    else:
        log_noise = jnp.clip(vae.log_noise, *_LOG_NOISE_RANGE)
        d = x.shape[-1]
        log_lik = -0.5 * (
            jnp.sum((x - out) ** 2, -1) * jnp.exp(-log_noise) + d * (log_noise + np.log(2 * np.pi))
        )
    kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, -1)
    return kl - log_lik


def elbo(key: PRNGKeyArray, vae: VAE, patches: Float[ArrayLike, "N h w"]) -> Float[Array, " N"]:
    """(N,) evidence lower bound of each patch, nats, from one reparameterised draw per patch."""
    patches = _check_patches(vae, patches)
    noise = jax.random.normal(key, (patches.shape[0], vae.latent_dim), vae.log_noise.dtype)
    return -_negative_elbo(vae, patches.reshape(patches.shape[0], -1), noise)


def train_vae(
    key: PRNGKeyArray,
    vae: VAE,
    patches: Float[ArrayLike, "N h w"],
    *,
    steps: int = 1000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
) -> tuple[VAE, Float[Array, " steps"]]:
    """Fit a VAE by Adam on minibatches, all steps inside one ``lax.scan``.

    Args:
        key: PRNG key of the minibatches and the reparameterisation draws.
        vae: the starting point (:func:`init_vae`, or a trained VAE to continue).
        patches: (N, h, w) training patches: standardised for the Gaussian likelihood, in [0, 1]
            for the Bernoulli one.
        steps: number of Adam steps, ≥ 1 (static).
        batch_size: patches per step, ≥ 1 (drawn with replacement; static).
        learning_rate: Adam step size, > 0.

    Returns:
        The trained VAE and the (steps,) loss history: mean −ELBO per patch of each minibatch
        before its step, nats.
    """
    patches = _check_patches(vae, patches)
    steps = check_int_at_least("steps", steps, 1)
    batch_size = check_int_at_least("batch_size", batch_size, 1)
    check_positive("learning_rate", learning_rate)
    flat = patches.reshape(patches.shape[0], -1).astype(vae.log_noise.dtype)
    return _train(key, vae, flat, steps, batch_size, adam(float(learning_rate)))


@eqx.filter_jit
def _train(key, vae, flat, steps, batch_size, optimizer):
    dynamic, static = eqx.partition(vae, eqx.is_inexact_array)
    n, dtype = flat.shape[0], flat.dtype
    # All randomness drawn at once: a uniform per (step, batch slot) picks the patch, q more
    # become the reparameterisation noise by the inverse normal CDF.
    u = jax.random.uniform(key, (steps, batch_size, 1 + vae.latent_dim), dtype)
    index = jnp.minimum((u[..., 0] * n).astype(jnp.int32), n - 1)
    lowest = jnp.nextafter(jnp.asarray(-1.0, dtype), jnp.asarray(0.0, dtype))
    noise = np.sqrt(2.0) * jax.lax.erf_inv(jnp.maximum(2.0 * u[..., 1:] - 1.0, lowest))

    def loss(d, index, noise):
        return jnp.mean(_negative_elbo(eqx.combine(d, static), flat[index], noise))

    def step(carry, draws):
        d, state = carry
        value, grads = jax.value_and_grad(loss)(d, *draws)
        updates, state = optimizer.update(grads, state, d)
        return (optax.apply_updates(d, updates), state), value

    state = optimizer.init(dynamic)
    (dynamic, _), losses = jax.lax.scan(step, (dynamic, state), (index, noise))
    return eqx.combine(dynamic, static), losses
