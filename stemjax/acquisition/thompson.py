"""Thompson sampling over a candidate set, and Monte-Carlo expected improvement.

A Thompson score is one draw of the objective at the m candidates: the posterior's own joint
sample ``posterior.samples[index]`` when the surrogate supplied samples (a pathwise function
sample keeps the correlations between candidates), otherwise an independent draw
``μ + σ·ε`` from each marginal (eq. 3 of paper 003). Its argmax is the Thompson choice.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from stemjax._validation import check_int_at_least
from stemjax.acquisition.combinators import AcquisitionFunction
from stemjax.acquisition.context import Context, incumbent, require
from stemjax.posterior import Posterior


def thompson_sample(
    key: PRNGKeyArray | None, posterior: Posterior, index: int = 0
) -> Float[Array, " m *p"]:
    """One posterior draw at the candidates.

    Args:
        key: PRNG key for a marginal draw; unused (may be None) when ``posterior.samples`` is set.
        posterior: mean/variance of shape (m,) or (m, p); samples (s, m) or (s, m, p).
        index: which joint sample to use when ``posterior.samples`` is set (static).

    Returns:
        (m,) or (m, p) draw, in the objective's units.
    """
    if posterior.samples is not None:
        s = posterior.samples.shape[0]
        if not 0 <= index < s:
            raise ValueError(f"index must lie in [0, {s - 1}] (posterior.samples has {s}); "
                             f"got {index}")
        return posterior.samples[index]
    if key is None:
        raise ValueError("thompson_sample needs a key when posterior.samples is None; got None")
    noise = jax.random.normal(key, jnp.shape(posterior.mean), jnp.result_type(posterior.mean))
    return posterior.mean + posterior.std * noise


def _draw(posterior: Posterior, context: Context, index: int, name: str) -> Array:
    key = None if posterior.samples is not None else require(context, "key", name)
    return thompson_sample(key, posterior, index)


class ThompsonSample(AcquisitionFunction):
    """A posterior draw as the score (negated when minimising); see :func:`thompson`."""

    maximize: bool = eqx.field(static=True, default=True)
    index: int = eqx.field(static=True, default=0)

    def score(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        draw = _draw(posterior, context, self.index, "thompson")
        return draw if self.maximize else -draw


def thompson(maximize: bool = True, index: int = 0) -> ThompsonSample:
    """Thompson sampling: ``posterior.samples[index]``, else a marginal draw with context.key."""
    check_int_at_least("index", index, 0)
    return ThompsonSample(maximize, index)


def mc_expected_improvement(
    samples: Float[Array, "s m"], best: Float[Array, ""], *, maximize: bool = True
) -> Float[Array, " m"]:
    """Monte-Carlo EI: the sample mean of max(f − best, 0) over (s, m) posterior draws."""
    samples = jnp.asarray(samples)
    gain = samples - best if maximize else best - samples
    return jnp.mean(jnp.maximum(gain, 0.0), axis=0)


class MCExpectedImprovement(AcquisitionFunction):
    """EI estimated from ``posterior.samples`` (see :func:`mc_ei`)."""

    maximize: bool = eqx.field(static=True, default=True)

    def score(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        if posterior.samples is None:
            raise ValueError("mc_ei needs posterior.samples (s, m); got None")
        best = incumbent(context, self.maximize, "mc_ei")
        return mc_expected_improvement(posterior.samples, best, maximize=self.maximize)


def mc_ei(maximize: bool = True) -> MCExpectedImprovement:
    """Monte-Carlo expected improvement from the posterior's joint samples."""
    return MCExpectedImprovement(maximize)

