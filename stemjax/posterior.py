"""The posterior summary that surrogates produce and acquisition functions consume."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


class Posterior(eqx.Module):
    """A surrogate's belief about the objective at m candidates.

    Attributes:
        mean: (m,) posterior mean of the latent function.
        variance: (m,) posterior variance of the latent function (≥ 0; diagonal only).
        samples: (s, m) joint posterior function samples over the candidates (for Thompson
            sampling and Monte-Carlo acquisitions), or None when not drawn.
    """

    mean: Float[Array, " m"]
    variance: Float[Array, " m"]
    samples: Float[Array, "s m"] | None = None

    @property
    def std(self) -> Float[Array, " m"]:
        """(m,) posterior standard deviation √variance (0 where the variance is ≤ 0)."""
        return jnp.sqrt(jnp.maximum(self.variance, 0.0))
