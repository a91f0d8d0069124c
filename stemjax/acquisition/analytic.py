"""Closed-form acquisitions of a Gaussian posterior: EI, LogEI, PI, LogPI, UCB, mean, uncertainty.

With ``u = μ − best`` when maximising (``best − μ`` when minimising), ``σ_eff = max(σ, min_std)``
and ``z = u/σ_eff``:

    EI    = σ_eff · h(z),          h(z) = φ(z) + zΦ(z)
    LogEI = log σ_eff + log h(z)   (stable for any z: Ament et al., NeurIPS 2023)
    PI    = Φ(z),  LogPI = log Φ(z)
    UCB   = ±μ + √β · σ            (BoTorch and gpax convention; −μ when minimising)

``min_std`` (default 1e-6, as BoTorch's variance floor of 1e-12) keeps z finite when σ = 0, so
LogEI and LogPI still rank candidates whose EI underflows. The array functions take means and
standard deviations of any (broadcast) shape; the acquisition factories (:func:`ei`,
:func:`log_ei`, …) read them from a :class:`~stemjax.posterior.Posterior` and the incumbent
from the :class:`~stemjax.acquisition.Context`.
"""

from __future__ import annotations

import math
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr
from jaxtyping import Array, ArrayLike, Float

from stemjax._validation import check_nonnegative, check_positive, is_concrete
from stemjax.acquisition.combinators import (
    AcquisitionFunction,
    AcquisitionLike,
    Chain,
    WeightedSum,
    chain,
    cost_weighting,
    weighted_sum,
)
from stemjax.acquisition.context import Context, incumbent
from stemjax.acquisition.special import _log_ndtr, log_ei_scaled
from stemjax.posterior import Posterior

MIN_STD = 1e-6
"""Default floor on the posterior standard deviation in improvement-based scores."""


def _improvement(mean, std, best, maximize: bool, min_std: float) -> tuple[Array, Array]:
    """(u, σ_eff): the improvement μ − best (best − μ when minimising) and max(σ, min_std)."""
    dtype = jnp.result_type(mean, std, best, float)
    mean, std, best = (jnp.asarray(x, dtype) for x in (mean, std, best))
    sigma = jnp.maximum(std, jnp.asarray(min_std, dtype))
    u = mean - best if maximize else best - mean
    u, sigma = jnp.broadcast_arrays(u, sigma)
    return u, sigma


def _standardised(mean, std, best, maximize: bool, min_std: float) -> tuple[Array, Array]:
    """(σ_eff, z) with σ_eff = max(σ, min_std) and z the standardised improvement."""
    u, sigma = _improvement(mean, std, best, maximize, min_std)
    return sigma, u / sigma


@partial(jax.jit, static_argnames=("maximize", "min_std"))
def _ei_core(mean, std, best, maximize, min_std):
    return jnp.exp(log_ei_scaled(*_improvement(mean, std, best, maximize, min_std)))


@partial(jax.jit, static_argnames=("maximize", "min_std"))
def _log_ei_core(mean, std, best, maximize, min_std):
    return log_ei_scaled(*_improvement(mean, std, best, maximize, min_std))


@partial(jax.jit, static_argnames=("maximize", "min_std"))
def _pi_core(mean, std, best, maximize, min_std):
    return ndtr(_standardised(mean, std, best, maximize, min_std)[1])


@partial(jax.jit, static_argnames=("maximize", "min_std"))
def _log_pi_core(mean, std, best, maximize, min_std):
    return _log_ndtr(_standardised(mean, std, best, maximize, min_std)[1])


@partial(jax.jit, static_argnames=("maximize",))
def _ucb_core(mean, std, beta, maximize):
    dtype = jnp.result_type(mean, std, beta, float)
    mean, std, beta = (jnp.asarray(x, dtype) for x in (mean, std, beta))
    return (mean if maximize else -mean) + jnp.sqrt(beta) * std


def _check(std, best, min_std) -> None:
    check_nonnegative("std", std)
    check_positive("min_std", min_std)
    del best  # ±inf incumbents (nothing observed yet) are allowed


def expected_improvement(
    mean: Float[ArrayLike, "..."],
    std: Float[ArrayLike, "..."],
    best: Float[ArrayLike, "..."],
    *,
    maximize: bool = True,
    min_std: float = MIN_STD,
) -> Float[Array, "..."]:
    """Expected improvement E[max(f − best, 0)] of f ~ N(mean, std²) (minimising: best − f).

    Args:
        mean: posterior mean, objective units, any shape.
        std: posterior standard deviation (≥ 0), broadcast against ``mean``.
        best: incumbent, broadcast.
        maximize: improvement above ``best`` (True) or below it (False).
        min_std: floor on ``std`` (> 0).

    Returns:
        EI ≥ 0, broadcast shape (μ = −0.5, σ = 1, best = 0: 0.1977966; minimising 0.6977966).
    """
    _check(std, best, min_std)
    return _ei_core(mean, std, best, maximize, float(min_std))


def log_expected_improvement(
    mean: Float[ArrayLike, "..."],
    std: Float[ArrayLike, "..."],
    best: Float[ArrayLike, "..."],
    *,
    maximize: bool = True,
    min_std: float = MIN_STD,
) -> Float[Array, "..."]:
    """log EI, finite with a finite positive gradient in the mean for any finite inputs.

    Arguments as :func:`expected_improvement`.
    """
    _check(std, best, min_std)
    return _log_ei_core(mean, std, best, maximize, float(min_std))


def probability_of_improvement(
    mean: Float[ArrayLike, "..."],
    std: Float[ArrayLike, "..."],
    best: Float[ArrayLike, "..."],
    *,
    maximize: bool = True,
    min_std: float = MIN_STD,
) -> Float[Array, "..."]:
    """P(f > best) = Φ(z) for f ~ N(mean, std²) (minimising: P(f < best)).

    Arguments as :func:`expected_improvement` (μ = 0, σ = 1, best = 1.96: 0.025).
    """
    _check(std, best, min_std)
    return _pi_core(mean, std, best, maximize, float(min_std))


def log_probability_of_improvement(
    mean: Float[ArrayLike, "..."],
    std: Float[ArrayLike, "..."],
    best: Float[ArrayLike, "..."],
    *,
    maximize: bool = True,
    min_std: float = MIN_STD,
) -> Float[Array, "..."]:
    """log Φ(z), stable for very negative z. Arguments as :func:`expected_improvement`."""
    _check(std, best, min_std)
    return _log_pi_core(mean, std, best, maximize, float(min_std))


def upper_confidence_bound(
    mean: Float[ArrayLike, "..."],
    std: Float[ArrayLike, "..."],
    beta: float | Float[ArrayLike, "..."],
    *,
    maximize: bool = True,
) -> Float[Array, "..."]:
    """μ + √β·σ (minimising: −μ + √β·σ, the negated lower bound).

    Args:
        mean: posterior mean, any shape.
        std: posterior standard deviation (≥ 0), broadcast.
        beta: exploration weight β ≥ 0, broadcast.
        maximize: see above.
    """
    check_nonnegative("std", std)
    check_nonnegative("beta", beta)
    return _ucb_core(mean, std, beta, maximize)


class _Improvement(AcquisitionFunction):
    maximize: bool = eqx.field(static=True, default=True)
    min_std: float = eqx.field(static=True, default=MIN_STD, converter=float)

    def __check_init__(self):
        check_positive("min_std", self.min_std)

    def _args(self, posterior: Posterior, context: Context, name: str):
        best = incumbent(context, self.maximize, name)
        return posterior.mean, posterior.std, best, self.maximize, self.min_std


class ExpectedImprovement(_Improvement):
    """EI of the posterior over the incumbent (see :func:`expected_improvement`)."""

    def score(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        return _ei_core(*self._args(posterior, context, "ei"))


class LogExpectedImprovement(_Improvement):
    """log EI (see :func:`log_expected_improvement`); scores are log-scores."""

    log_space = True

    def score(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        return _log_ei_core(*self._args(posterior, context, "log_ei"))


class ProbabilityOfImprovement(_Improvement):
    """PI = Φ(z) (see :func:`probability_of_improvement`)."""

    def score(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        return _pi_core(*self._args(posterior, context, "pi"))


class LogProbabilityOfImprovement(_Improvement):
    """log PI; scores are log-scores."""

    log_space = True

    def score(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        return _log_pi_core(*self._args(posterior, context, "log_pi"))


class PosteriorMean(AcquisitionFunction):
    """The posterior mean (negated when minimising): pure exploitation."""

    maximize: bool = eqx.field(static=True, default=True)

    def score(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        return posterior.mean if self.maximize else -posterior.mean


class MaxUncertainty(AcquisitionFunction):
    """The posterior standard deviation σ: pure exploration (maximum uncertainty, MU)."""

    def score(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        return posterior.std


def ei(maximize: bool = True, min_std: float = MIN_STD) -> ExpectedImprovement:
    """Expected improvement over ``context.best`` (or the best masked ``context.outcomes``)."""
    return ExpectedImprovement(maximize, min_std)


def log_ei(maximize: bool = True, min_std: float = MIN_STD) -> LogExpectedImprovement:
    """log expected improvement (log-scores), stable where EI underflows."""
    return LogExpectedImprovement(maximize, min_std)


def pi(maximize: bool = True, min_std: float = MIN_STD) -> ProbabilityOfImprovement:
    """Probability of improvement over the incumbent."""
    return ProbabilityOfImprovement(maximize, min_std)


def log_pi(maximize: bool = True, min_std: float = MIN_STD) -> LogProbabilityOfImprovement:
    """log probability of improvement (log-scores)."""
    return LogProbabilityOfImprovement(maximize, min_std)


def posterior_mean(maximize: bool = True) -> PosteriorMean:
    """The posterior mean (−mean when minimising)."""
    return PosteriorMean(maximize)


def max_uncertainty() -> MaxUncertainty:
    """The posterior standard deviation (maximum-uncertainty exploration)."""
    return MaxUncertainty()


def ucb(beta: float, maximize: bool = True) -> WeightedSum:
    """Upper confidence bound ±μ + √β·σ, built as ``weighted_sum(posterior_mean, max_uncertainty)``.

    Args:
        beta: exploration weight β ≥ 0 (β = 1 at μ = 0.5, σ = 1 gives 1.5).
        maximize: −μ + √β·σ when False.
    """
    check_nonnegative("beta", beta)
    root = math.sqrt(float(beta)) if is_concrete(beta) else jnp.sqrt(beta)
    return weighted_sum(posterior_mean(maximize), max_uncertainty(), weights=(1.0, root))


def ei_per_cost(alpha: float = 1.0, cost: AcquisitionLike | None = None, *,
                maximize: bool = True, log: bool = False) -> Chain:
    """EI per unit cost raised to a power: ``chain(ei(), cost_weighting(alpha, cost))``.

    Args:
        alpha: cost exponent α ≥ 0 (0: plain EI).
        cost: cost model ``(posterior, context) -> (m,)`` (e.g. ``MotionCost()``); default
            ``context.costs``.
        maximize: see :func:`ei`.
        log: score log EI − α log c instead (stable where EI underflows).
    """
    base = log_ei(maximize) if log else ei(maximize)
    return chain(base, cost_weighting(alpha, cost))
