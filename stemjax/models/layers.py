"""Small network building blocks written as matrix products, so that a stack of networks under
``vmap`` (deep ensembles, one network per campaign) becomes batched matrix products rather than
grouped convolutions, which XLA runs far faster on CPUs."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


@functools.partial(jax.jit, static_argnums=(1, 2))
def uniform_layers(key, shapes_and_fans, dtype) -> list[Array]:
    """Arrays of the given shapes, uniform in ±1/√fan-in, from one random draw.

    Args:
        key: PRNG key.
        shapes_and_fans: tuple of (shape, fan_in) pairs (static).
        dtype: float dtype (static).
    """
    sizes = [math.prod(shape) for shape, _ in shapes_and_fans]
    u = jax.random.uniform(key, (sum(sizes),), dtype, -1.0, 1.0)
    out, start = [], 0
    for (shape, fan_in), size in zip(shapes_and_fans, sizes):
        out.append(u[start : start + size].reshape(shape) / math.sqrt(fan_in))
        start += size
    return out


def patches3x3(x: Float[Array, "n h w c"]) -> Float[Array, "n h w 9c"]:
    """The 3 × 3 neighbourhoods of every pixel ('same' zero padding), stacked on the last axis;
    a 3 × 3 convolution is then ``patches3x3(x) @ w`` with w of shape (9c, c_out)."""
    h, w = x.shape[1], x.shape[2]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return jnp.concatenate([xp[:, i : i + h, j : j + w, :] for i in range(3) for j in range(3)], -1)


def maxpool2(x: Float[Array, "n h w c"]) -> Float[Array, "n h//2 w//2 c"]:
    """2 × 2 max-pooling with stride 2; an odd last row or column is dropped."""
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
