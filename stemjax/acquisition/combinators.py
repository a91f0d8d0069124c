"""The acquisition interface and the combinators that compose acquisitions.

An acquisition is any function ``acq(posterior, context) -> (m,) scores`` (larger is better).
Built-ins are :class:`AcquisitionFunction` modules, which add input checks in ``__call__`` and
say whether their scores are log-scores (``log_space``); :func:`acquisition` makes one of any
plain function. Combinators, in the manner of optax's ``chain``, build new acquisitions:

- ``chain(acq, *transforms)`` passes the scores of ``acq`` through score transforms in turn:
  :func:`cost_weighting`, :func:`novelty_weighting`, :func:`recency_penalty`, or any function
  ``(scores, posterior, context) -> scores``. Each transform knows whether the scores are
  log-scores and acts accordingly (dividing by a cost, or subtracting its log).
- ``weighted_sum(acq_1, …, weights=…)`` adds scores (UCB is ``μ + √β·σ`` this way);
- ``log_product(acq_1, …, weights=…)`` multiplies acquisitions in log space,
  ``Σ w_i log a_i`` (log-space inputs are used as they are).

Every combinator returns an :class:`AcquisitionFunction`, so the results compose again and
vmap over campaigns like the built-ins.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from stemjax._validation import check_finite, check_nonnegative, check_positive, is_concrete
from stemjax.acquisition._checks import check_fraction, check_simplex
from stemjax.acquisition.context import Context, check_posterior, require
from stemjax.acquisition.costs import context_costs, cost_weighted, recency_factor
from stemjax.acquisition.region_switch import (
    SIMPLEX_DIAMETER,
    compositional_novelty,
    novelty_weighted,
)
from stemjax.posterior import Posterior

Scores = Float[Array, " m"]
AcquisitionLike = Callable[[Posterior, Context], Scores]


class AcquisitionFunction(eqx.Module):
    """Base of every acquisition: ``acq(posterior, context=None) -> (m,)`` scores.

    Subclasses implement :meth:`score` (pure, traceable) and may add concrete-input checks in
    :meth:`check`. ``__call__`` supplies an empty :class:`Context` when none is given, checks
    the posterior (shapes; variance ≥ 0 when concrete) and the context, then runs ``score``
    compiled. Under ``jax.vmap`` over stacked posteriors and contexts the scores are
    (campaigns, m).
    """

    log_space: ClassVar[bool] = False
    """True when the scores are log-scores (LogEI, LogPI, log products)."""

    @abc.abstractmethod
    def score(self, posterior: Posterior, context: Context) -> Scores:
        """(m,) scores, without input checks."""

    def check(self, posterior: Posterior, context: Context) -> None:
        """Checks on concrete inputs, run before compiling (none by default)."""

    def __call__(self, posterior: Posterior, context: Context | None = None) -> Scores:
        context = Context() if context is None else context
        check_posterior(posterior)
        self.check(posterior, context)
        return _compiled_score(self, posterior, context)


@eqx.filter_jit
def _compiled_score(acq: AcquisitionFunction, posterior: Posterior, context: Context) -> Scores:
    return acq.score(posterior, context)


def check_of(item, posterior: Posterior, context: Context) -> None:
    """Run the concrete-input checks of an acquisition or score transform, if it has any."""
    if isinstance(item, (AcquisitionFunction, ScoreTransform)):
        item.check(posterior, context)


def score_of(acq: AcquisitionLike, posterior: Posterior, context: Context) -> Scores:
    """Scores of an acquisition module or plain function, without repeating input checks."""
    if isinstance(acq, AcquisitionFunction):
        return acq.score(posterior, context)
    return acq(posterior, context)


def is_log_space(acq: AcquisitionLike) -> bool:
    """Whether ``acq`` returns log-scores (plain functions are taken to return plain scores)."""
    return bool(getattr(acq, "log_space", False))


class FunctionAcquisition(AcquisitionFunction):
    """A plain function ``fn(posterior, context) -> (m,)`` made into an acquisition."""

    fn: AcquisitionLike
    is_log: bool = eqx.field(static=True, default=False)

    @property
    def log_space(self) -> bool:  # type: ignore[override]
        return self.is_log

    def score(self, posterior: Posterior, context: Context) -> Scores:
        return self.fn(posterior, context)


def acquisition(fn: AcquisitionLike, *, log_space: bool = False) -> AcquisitionFunction:
    """Wrap ``fn(posterior, context) -> (m,) scores`` as an acquisition.

    Args:
        fn: the scoring function (pure; JAX-traceable).
        log_space: ``fn`` returns log-scores (combinators then subtract log-costs instead of
            dividing by costs).
    """
    if isinstance(fn, AcquisitionFunction):
        return fn
    if not callable(fn):
        raise TypeError(f"an acquisition must be callable as fn(posterior, context); got {fn!r}")
    return FunctionAcquisition(fn, log_space)


class ScoreTransform(eqx.Module):
    """A step of :func:`chain`: maps (m,) scores to (m,) scores given posterior and context."""

    @abc.abstractmethod
    def apply(self, scores: Scores, posterior: Posterior, context: Context,
              log_space: bool) -> Scores:
        """Transformed scores; ``log_space`` says whether ``scores`` are log-scores."""

    def check(self, posterior: Posterior, context: Context) -> None:
        """Checks on concrete inputs, run before compiling (none by default)."""


def _apply(transform, scores, posterior, context, log_space):
    if isinstance(transform, ScoreTransform):
        return transform.apply(scores, posterior, context, log_space)
    return transform(scores, posterior, context)


class Chain(AcquisitionFunction):
    """An acquisition followed by score transforms (see :func:`chain`)."""

    base: AcquisitionLike
    transforms: tuple

    @property
    def log_space(self) -> bool:  # type: ignore[override]
        return is_log_space(self.base)

    def check(self, posterior: Posterior, context: Context) -> None:
        check_of(self.base, posterior, context)
        for transform in self.transforms:
            check_of(transform, posterior, context)

    def score(self, posterior: Posterior, context: Context) -> Scores:
        scores = score_of(self.base, posterior, context)
        for transform in self.transforms:
            scores = _apply(transform, scores, posterior, context, self.log_space)
        return scores


def chain(acq: AcquisitionLike, *transforms) -> Chain:
    """``acq`` followed by score transforms applied in order (like ``optax.chain``).

    Args:
        acq: an acquisition (module or plain function).
        *transforms: :class:`ScoreTransform` modules, or plain functions
            ``(scores, posterior, context) -> scores``.
    """
    for t in transforms:
        if not callable(t) and not isinstance(t, ScoreTransform):
            raise TypeError(f"chain takes score transforms; got {t!r}")
    return Chain(acquisition(acq), tuple(transforms))


def _hyper(value):
    """A hyperparameter as an array leaf: traced under jit (sweeping it does not recompile)
    and cast to the scores' dtype where it is used."""
    return np.asarray(value, dtype=float) if is_concrete(value) else jnp.asarray(value)


def _weights(weights, n: int, name: str):
    """(n,) weights, one per part (default 1)."""
    w = _hyper(np.ones(n) if weights is None else weights)
    if w.shape != (n,):
        raise ValueError(f"{name} needs one weight per acquisition ({n}); got shape {w.shape}")
    check_finite("weights", w)
    return w


class WeightedSum(AcquisitionFunction):
    """Σ_i w_i · a_i over acquisitions of the same kind (all plain or all log-scores)."""

    parts: tuple
    weights: Float[Array, " n"]
    is_log: bool = eqx.field(static=True, default=False)

    @property
    def log_space(self) -> bool:  # type: ignore[override]
        return self.is_log

    def check(self, posterior: Posterior, context: Context) -> None:
        for part in self.parts:
            check_of(part, posterior, context)

    def score(self, posterior: Posterior, context: Context) -> Scores:
        total = None
        for i, part in enumerate(self.parts):
            s = score_of(part, posterior, context)
            term = jnp.asarray(self.weights[i], s.dtype) * s
            total = term if total is None else total + term
        return total


def weighted_sum(*acqs: AcquisitionLike, weights: Sequence[float] | Array | None = None
                 ) -> WeightedSum:
    """The acquisition Σ_i w_i · a_i (weights default to 1).

    All parts must return plain scores, or all log-scores (a weighted sum of log-scores is a
    weighted product in log space; use :func:`log_product` to mix the two).
    """
    if not acqs:
        raise ValueError("weighted_sum needs at least one acquisition; got none")
    kinds = {is_log_space(a) for a in acqs}
    if len(kinds) > 1:
        raise ValueError(
            "weighted_sum needs acquisitions of one kind (all plain or all log-scores); got a "
            "mix: use log_product to combine them in log space"
        )
    return WeightedSum(tuple(acquisition(a) for a in acqs),
                       _weights(weights, len(acqs), "weighted_sum"), kinds.pop())


def _to_log(scores: Array) -> Array:
    return jnp.log(jnp.maximum(scores, jnp.finfo(scores.dtype).tiny))


class LogProduct(AcquisitionFunction):
    """Σ_i w_i · log a_i: the weighted product of acquisitions, in log space."""

    parts: tuple
    weights: Float[Array, " n"]
    log_space: ClassVar[bool] = True

    def check(self, posterior: Posterior, context: Context) -> None:
        for part in self.parts:
            check_of(part, posterior, context)

    def score(self, posterior: Posterior, context: Context) -> Scores:
        total = None
        for i, part in enumerate(self.parts):
            s = score_of(part, posterior, context)
            term = jnp.asarray(self.weights[i], s.dtype) * (s if is_log_space(part) else _to_log(s))
            total = term if total is None else total + term
        return total


def log_product(*acqs: AcquisitionLike, weights: Sequence[float] | Array | None = None
                ) -> LogProduct:
    """The log-space acquisition log Π_i a_i^{w_i} = Σ_i w_i log a_i (weights default to 1).

    Plain-score parts must be ≥ 0; they are floored at the smallest positive float before the
    log, so a zero score gives a very negative, finite log-score. Prefer log-space parts
    (``log_ei``, ``log_pi``) where a part can be vanishingly small.
    """
    if not acqs:
        raise ValueError("log_product needs at least one acquisition; got none")
    w = _weights(weights, len(acqs), "log_product")
    check_nonnegative("weights", w)
    return LogProduct(tuple(acquisition(a) for a in acqs), w)


class CostWeighting(ScoreTransform):
    """Scores per unit cost to the power α (see :func:`cost_weighting`)."""

    alpha: float | Array
    cost: AcquisitionLike

    def check(self, posterior, context):
        if self.cost is context_costs:
            check_positive("context.costs", require(context, "costs", "cost_weighting"))
        check_of(self.cost, posterior, context)

    def apply(self, scores, posterior, context, log_space):
        return cost_weighted(scores, self.cost(posterior, context), alpha=self.alpha,
                             log_space=log_space)


def cost_weighting(alpha: float = 1.0, cost: AcquisitionLike | None = None) -> CostWeighting:
    """Transform: divide scores by cost^α (a ≤ 0 multiplied instead; log-scores: − α log c).

    Args:
        alpha: cost exponent α ≥ 0 (0 leaves scores unchanged; 1 is eq. 4 of paper 004).
        cost: cost model ``(posterior, context) -> (m,)`` costs > 0, e.g.
            :class:`~stemjax.acquisition.MotionCost` or :class:`~stemjax.acquisition.DoseCost`;
            default: ``context.costs``.
    """
    check_nonnegative("alpha", alpha)
    return CostWeighting(_hyper(alpha), context_costs if cost is None else cost)


def cost_aware(acq: AcquisitionLike, cost: AcquisitionLike | None = None, *,
               alpha: float = 1.0) -> Chain:
    """``chain(acq, cost_weighting(alpha, cost))``: the cost-aware score of paper 004, eq. 4."""
    return chain(acq, cost_weighting(alpha, cost))


class NoveltyWeighting(ScoreTransform):
    """Scores raised for compositions far from those seen (see :func:`novelty_weighting`)."""

    weight: float | Array
    length_scale: float | Array

    def check(self, posterior, context):
        comps = require(context, "compositions", "novelty_weighting")
        seen = require(context, "seen_compositions", "novelty_weighting")
        check_simplex("context.compositions", comps)
        check_simplex("context.seen_compositions", seen, context.seen_mask)

    def apply(self, scores, posterior, context, log_space):
        comps = require(context, "compositions", "novelty_weighting")
        seen = require(context, "seen_compositions", "novelty_weighting")
        novelty = compositional_novelty(comps, seen, context.seen_mask,
                                        length_scale=self.length_scale)
        return novelty_weighted(scores, novelty, weight=self.weight, log_space=log_space)


def novelty_weighting(weight: float = 1.0, length_scale: float = SIMPLEX_DIAMETER
                      ) -> NoveltyWeighting:
    """Transform: a → a·(1 + λ n(c)) with the compositional novelty n of paper 004, eqs. 14–15.

    Reads ``context.compositions`` (one per candidate) and ``context.seen_compositions`` /
    ``context.seen_mask``. Negative scores are divided by the factor instead, and log-scores
    get ``+ log1p(λ n)``, so novelty never lowers a candidate.

    Args:
        weight: λ_nov ≥ 0.
        length_scale: d₀ of eq. 14, in composition units (> 0; default √2, the largest
            distance between two points of the simplex).
    """
    check_nonnegative("weight", weight)
    check_positive("length_scale", length_scale)
    return NoveltyWeighting(_hyper(weight), _hyper(length_scale))


class RecencyPenalty(ScoreTransform):
    """Scores lowered near recently visited positions (see :func:`recency_penalty`)."""

    length_scale_um: float | Array
    strength: float | Array
    decay: float | Array

    def check(self, posterior, context):
        require(context, "positions", "recency_penalty")
        require(context, "visited", "recency_penalty")
        if context.visited_age is not None:
            check_nonnegative("context.visited_age", context.visited_age)

    def apply(self, scores, posterior, context, log_space):
        positions = require(context, "positions", "recency_penalty")
        visited = require(context, "visited", "recency_penalty")
        factor = recency_factor(positions, visited, length_scale_um=self.length_scale_um,
                                mask=context.visited_mask, age=context.visited_age,
                                strength=self.strength, decay=self.decay)
        # A factor f in (0, 1] acts as a cost 1/f ≥ 1.
        return cost_weighted(scores, 1.0 / factor, alpha=1.0, log_space=log_space)


def recency_penalty(length_scale_um: float, strength: float = 0.9, decay: float = 1.0
                    ) -> RecencyPenalty:
    """Transform discouraging revisits: scores scaled by the factor of :func:`recency_factor`.

    Reads ``context.positions`` and ``context.visited`` / ``visited_mask`` / ``visited_age``.
    The factor f ∈ [1 − strength, 1] is applied as a cost 1/f, so negative scores and
    log-scores are handled as by :func:`cost_weighting`.

    Args:
        length_scale_um: range ℓ of the penalty around a visit, µm (> 0).
        strength: depth of the penalty on a fresh visit, in [0, 1).
        decay: per-step fading of a visit's penalty, in (0, 1].
    """
    check_positive("length_scale_um", length_scale_um, "µm")
    check_fraction("strength", strength, closed_low=True, closed_high=False)
    check_fraction("decay", decay, closed_low=False, closed_high=True)
    return RecencyPenalty(_hyper(length_scale_um), _hyper(strength), _hyper(decay))

