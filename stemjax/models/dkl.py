"""Deep kernel learning: a feature network composed with a base kernel.

k_deep(x, x') = k(φ_w(x), φ_w(x')) (Wilson, Hu, Salakhutdinov & Xing, "Deep kernel learning",
AISTATS 2016): the network weights w and the kernel hyperparameters are trained together on the
marginal likelihood (:func:`~stemjax.models.fit.fit`), warm-started from one campaign step to
the next, and ``vmap`` across campaigns like any other :class:`~stemjax.models.gp.GPParams`.

Feature networks map a batch of inputs to (n, q) latents:

- :class:`ConvFeatures` for image patches (n, h, w): the two-layer CNN of the BEACON-DKL papers
  (3 × 3 convolutions with 16 and 32 channels, each followed by ReLU and 2 × 2 max-pooling, then
  a linear map to a 2-D latent; Pratiush et al. 2026, shared/papers/003). The convolutions are
  written as patch-matrix products, so a stack of networks under ``vmap`` becomes batched matrix
  products rather than grouped convolutions.
- :class:`MLPFeatures` for vectors (n, d).

Both hold only arrays and static settings, so they stack with ``jax.tree.map(jnp.stack, ...)``
and pass through plain ``jax.vmap``. Weights start uniform in ±1/√fan-in (the common default).
"""

from __future__ import annotations


import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from stemjax._validation import check_int_at_least
from stemjax.models.gp import GPData, GPParams, init_params
from stemjax.models.kernels import float_dtype
from stemjax.models.layers import maxpool2, patches3x3, uniform_layers

_ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu, "silu": jax.nn.silu}


class ConvFeatures(eqx.Module):
    """CNN feature extractor for image patches: (n, h, w) or (n, h, w, c) → (n, latent_dim).

    conv 3 × 3 (c → channels[0]) → ReLU → max-pool 2 → conv 3 × 3 (→ channels[1]) → ReLU →
    max-pool 2 → linear (h/4 · w/4 · channels[1] → latent_dim).

    Args:
        key: PRNG key for the initial weights.
        patch_shape: (h, w), both divisible by 4; default (16, 16).
        channels: output channels of the two convolutions; default (16, 32) as in the papers.
        latent_dim: q, the size of the latent the kernel sees; default 2.
        in_channels: c of the patches; default 1.
        dtype: float dtype of the weights (default: JAX's default float).
    """

    conv1_w: Float[Array, "k1 c1"]
    conv1_b: Float[Array, " c1"]
    conv2_w: Float[Array, "k2 c2"]
    conv2_b: Float[Array, " c2"]
    out_w: Float[Array, "f q"]
    out_b: Float[Array, " q"]
    patch_shape: tuple[int, int] = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        patch_shape: tuple[int, int] = (16, 16),
        channels: tuple[int, int] = (16, 32),
        latent_dim: int = 2,
        in_channels: int = 1,
        *,
        dtype=None,
    ):
        h, w = (int(s) for s in patch_shape)
        if h % 4 or w % 4 or h < 4 or w < 4:
            raise ValueError(f"patch_shape must be two multiples of 4; got {patch_shape!r}")
        c1, c2 = (check_int_at_least("channels", c, 1) for c in channels)
        q = check_int_at_least("latent_dim", latent_dim, 1)
        c0 = check_int_at_least("in_channels", in_channels, 1)
        dtype = jnp.dtype(dtype or float_dtype())
        flat = (h // 4) * (w // 4) * c2
        layers = (
            ((9 * c0, c1), 9 * c0), ((c1,), 9 * c0),
            ((9 * c1, c2), 9 * c1), ((c2,), 9 * c1),
            ((flat, q), flat), ((q,), flat),
        )  # fmt: skip
        (self.conv1_w, self.conv1_b, self.conv2_w, self.conv2_b, self.out_w, self.out_b) = (
            uniform_layers(key, layers, dtype)
        )
        self.patch_shape = (h, w)
        self.in_channels = c0

    def __call__(self, x: Float[Array, "n h w *c"]) -> Float[Array, "n q"]:
        """Latents (n, q) of patches (n, h, w) (or (n, h, w, c))."""
        if x.ndim == 3:
            x = x[..., None]
        if x.shape[1:] != (*self.patch_shape, self.in_channels):
            raise ValueError(
                f"patches must have shape (n, {self.patch_shape[0]}, {self.patch_shape[1]}"
                f"{'' if self.in_channels == 1 else f', {self.in_channels}'}); got {x.shape}"
            )
        x = x.astype(self.conv1_w.dtype)
        h = maxpool2(jax.nn.relu(patches3x3(x) @ self.conv1_w + self.conv1_b))
        h = maxpool2(jax.nn.relu(patches3x3(h) @ self.conv2_w + self.conv2_b))
        return h.reshape(h.shape[0], -1) @ self.out_w + self.out_b


class MLPFeatures(eqx.Module):
    """Fully connected feature extractor for vectors: (n, d) → (n, latent_dim).

    Args:
        key: PRNG key for the initial weights.
        in_dim: d, the input size.
        hidden: widths of the hidden layers; default (64, 64).
        latent_dim: q; default 2.
        activation: ``"tanh"`` (default), ``"relu"``, ``"gelu"`` or ``"silu"``.
        dtype: float dtype of the weights.
    """

    weights: tuple[Float[Array, "a b"], ...]
    biases: tuple[Float[Array, " b"], ...]
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        in_dim: int,
        hidden: tuple[int, ...] = (64, 64),
        latent_dim: int = 2,
        activation: str = "tanh",
        *,
        dtype=None,
    ):
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(_ACTIVATIONS)}; got {activation!r}"
            )
        sizes = [check_int_at_least("in_dim", in_dim, 1)]
        sizes += [check_int_at_least("hidden", h, 1) for h in hidden]
        sizes += [check_int_at_least("latent_dim", latent_dim, 1)]
        dtype = jnp.dtype(dtype or float_dtype())
        layers = tuple(
            item for a, b in zip(sizes, sizes[1:]) for item in (((a, b), a), ((b,), a))
        )
        arrays = uniform_layers(key, layers, dtype)
        self.weights = tuple(arrays[0::2])
        self.biases = tuple(arrays[1::2])
        self.activation = activation

    def __call__(self, x: Float[Array, "n d"]) -> Float[Array, "n q"]:
        """Latents (n, q) of inputs (n, d)."""
        if x.ndim != 2 or x.shape[1] != self.weights[0].shape[0]:
            raise ValueError(f"inputs must have shape (n, {self.weights[0].shape[0]}); got {x.shape}")
        act = _ACTIVATIONS[self.activation]
        h = x.astype(self.weights[0].dtype)
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = act(h @ w + b)
        return h @ self.weights[-1] + self.biases[-1]


def init_dkl(
    key: PRNGKeyArray,
    data: GPData,
    kind: str = "rbf",
    *,
    latent_dim: int = 2,
    channels: tuple[int, int] = (16, 32),
    hidden: tuple[int, ...] = (64, 64),
    activation: str = "tanh",
    ard: bool = True,
) -> GPParams:
    """A deep-kernel GP for one campaign's data: a fresh network and starting hyperparameters.

    Patches (``data.x`` of shape (n, h, w) or (n, h, w, c)) get a :class:`ConvFeatures`,
    vectors (n, d) an :class:`MLPFeatures`; the kernel hyperparameters start from
    :func:`~stemjax.models.gp.init_params` on the initial latents. Works under ``vmap`` (one key
    and one dataset per campaign).

    Args:
        key: PRNG key for the network weights.
        data: one campaign's :class:`~stemjax.models.gp.GPData`.
        kind: base kernel family; default ``"rbf"`` (as in the papers).
        latent_dim: q; default 2.
        channels: CNN channels (patches only).
        hidden: MLP widths (vectors only).
        activation: MLP activation (vectors only).
        ard: one lengthscale per latent dimension.
    """
    dtype = data.y.dtype
    x = data.x
    if x.ndim in (3, 4):
        net = ConvFeatures(
            key, x.shape[1:3], channels, latent_dim, 1 if x.ndim == 3 else x.shape[3], dtype=dtype
        )
    elif x.ndim == 2:
        net = MLPFeatures(key, x.shape[1], hidden, latent_dim, activation, dtype=dtype)
    else:
        raise ValueError(
            f"data.x must hold vectors (n, d) or patches (n, h, w[, c]) of one campaign; "
            f"got shape {x.shape}"
        )
    return init_params(data, kind, ard=ard, features=net)
