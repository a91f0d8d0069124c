"""Costs of a measurement and cost-aware scores.

Motion time and cost follow Barakati et al., "STEM-based exploration of random particle
libraries with cost-aware Bayesian optimisation" (shared/papers/004, §IV.1): within the
beam-shift range ``d_bs`` the beam moves in ``t_bs`` (control overhead, 10–30 ms) at unit cost;
beyond it the stage travels at speed ``v`` after fixed latencies ``t₀ = t_st + t_bs``
(realignment, overview image, EDX):

    t_move(d) = t_bs                 (d ≤ d_bs)        eq. 5
              = t₀ + d/v             (d > d_bs)
    C_move(d) = c_beam               (d ≤ d_bs)        eq. 6
              = α_t (t₀ + d/v)       (d > d_bs)

and the cost-aware score is ``S = a/C_move`` (eq. 4). :func:`cost_weighted` generalises it to
``a / c^α`` (EI per unit cost raised to a power α; α = 0 leaves ``a`` unchanged) and keeps the
ordering right for negative utilities, as BoTorch's ``InverseCostWeightedUtility`` does:
``a·c^α`` when ``a ≤ 0``, so a dearer candidate never scores above a cheaper one of equal
utility. Its log form is ``log a − α log c``.

Cost models (:class:`MotionCost`, :class:`DoseCost`, :func:`sum_costs`) have the acquisition
signature ``(posterior, context) -> (m,)`` and feed :func:`stemjax.acquisition.cost_weighting`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from stemjax._validation import check_nonnegative, check_positive
from stemjax.acquisition._checks import check_fraction
from stemjax.acquisition.context import Context, mask_or_all, require
from stemjax.posterior import Posterior

# Defaults of paper 004 §IV.3: beam-shift field of view 30 × 30 µm (reach 15 µm from its
# centre), stage 10 µm/s, 5 s retune after each region change, 10–30 ms per beam move, α = 1.
BEAM_SHIFT_RANGE_UM = 15.0
BEAM_SHIFT_TIME_S = 0.02
STAGE_LATENCY_S = 5.0
STAGE_SPEED_UM_PER_S = 10.0


def _float(*values):
    return jnp.result_type(*values, float)


def _floor_positive(costs: Array) -> Array:
    return jnp.maximum(costs, jnp.finfo(costs.dtype).tiny)


def cost_weighted(
    scores: Float[ArrayLike, "..."],
    costs: Float[ArrayLike, "..."],
    *,
    alpha: float | Float[ArrayLike, ""] = 1.0,
    log_space: bool = False,
) -> Float[Array, "..."]:
    """Utility per unit cost raised to a power: ``a/c^α`` (a > 0), ``a·c^α`` (a ≤ 0).

    Args:
        scores: utilities a, any shape; log-utilities when ``log_space``.
        costs: costs c > 0, broadcast against ``scores``.
        alpha: cost exponent α ≥ 0 (0: costs ignored; 1: eq. 4 of paper 004).
        log_space: scores are log a; return ``log a − α log c``.

    Returns:
        Cost-weighted scores, broadcast shape (δ = 0.2, c = 2 → 0.1; δ = −0.2, c = 2 → −0.4).
    """
    check_positive("costs", costs)
    check_nonnegative("alpha", alpha)
    return _cost_weighted_core(scores, costs, alpha, bool(log_space))


@partial(jax.jit, static_argnames=("log_space",))
def _cost_weighted_core(scores, costs, alpha, log_space):
    dtype = _float(scores, costs)
    a = jnp.asarray(scores, dtype)
    c = _floor_positive(jnp.asarray(costs, dtype))
    alpha = jnp.asarray(alpha, dtype)
    if log_space:
        return a - alpha * jnp.log(c)
    factor = c**alpha
    return jnp.where(a > 0, a / factor, a * factor)


def cost_aware_score(
    acquisition_value: Float[ArrayLike, "..."], motion_cost: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Cost-aware score S = a/C_move of paper 004, eq. 4 (sign-safe, see :func:`cost_weighted`)."""
    return cost_weighted(acquisition_value, motion_cost, alpha=1.0)


def log_cost_aware_score(
    log_acquisition_value: Float[ArrayLike, "..."], motion_cost: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """log S = log a − log C_move (eq. 4 in log form, for LogEI and other log scores)."""
    return cost_weighted(log_acquisition_value, motion_cost, alpha=1.0, log_space=True)


def _check_motion(beam_shift_range_um, beam_shift_time_s, stage_latency_s, stage_speed_um_per_s,
                  cost_per_s=1.0, beam_shift_cost=1.0) -> None:
    check_nonnegative("beam_shift_range_um", beam_shift_range_um, "µm")
    check_nonnegative("beam_shift_time_s", beam_shift_time_s, "s")
    check_nonnegative("stage_latency_s", stage_latency_s, "s")
    check_positive("stage_speed_um_per_s", stage_speed_um_per_s, "µm/s")
    check_positive("cost_per_s", cost_per_s, "per s")
    check_positive("beam_shift_cost", beam_shift_cost)


def motion_time(
    distance_um: Float[ArrayLike, "..."],
    *,
    beam_shift_range_um: float = BEAM_SHIFT_RANGE_UM,
    beam_shift_time_s: float = BEAM_SHIFT_TIME_S,
    stage_latency_s: float = STAGE_LATENCY_S,
    stage_speed_um_per_s: float = STAGE_SPEED_UM_PER_S,
) -> Float[Array, "..."]:
    """Repositioning time of paper 004, eq. 5, s.

    Args:
        distance_um: distance d from the centre of the current field of view, µm (≥ 0).
        beam_shift_range_um: reach d_bs of the beam shift, µm (≥ 0).
        beam_shift_time_s: t_bs, time of a beam-shift move (control overhead), s (≥ 0).
        stage_latency_s: t_st, fixed latency of a stage move (realignment, overview image,
            EDX), s (≥ 0); t₀ = t_st + t_bs.
        stage_speed_um_per_s: average stage speed v, µm/s (> 0).

    Returns:
        ``t_bs`` where d ≤ d_bs, else ``t₀ + d/v``; shape of ``distance_um``.
    """
    check_nonnegative("distance_um", distance_um, "µm")
    _check_motion(beam_shift_range_um, beam_shift_time_s, stage_latency_s, stage_speed_um_per_s)
    return _motion_core(distance_um, beam_shift_range_um, beam_shift_time_s, stage_latency_s,
                        stage_speed_um_per_s, 1.0, beam_shift_time_s, True)


def motion_cost(
    distance_um: Float[ArrayLike, "..."],
    *,
    beam_shift_range_um: float = BEAM_SHIFT_RANGE_UM,
    beam_shift_time_s: float = BEAM_SHIFT_TIME_S,
    stage_latency_s: float = STAGE_LATENCY_S,
    stage_speed_um_per_s: float = STAGE_SPEED_UM_PER_S,
    cost_per_s: float = 1.0,
    beam_shift_cost: float = 1.0,
) -> Float[Array, "..."]:
    """Motion cost of paper 004, eq. 6 (dimensionless).

    Args:
        distance_um: distance d from the centre of the current field of view, µm (≥ 0).
        beam_shift_range_um, beam_shift_time_s, stage_latency_s, stage_speed_um_per_s: as in
            :func:`motion_time`.
        cost_per_s: α of eq. 6, converting stage-move time to cost, per s (> 0).
        beam_shift_cost: c_beam, cost of a move within beam-shift reach (> 0; the paper sets 1).

    Returns:
        ``c_beam`` where d ≤ d_bs, else ``α (t₀ + d/v)``; shape of ``distance_um``.
    """
    check_nonnegative("distance_um", distance_um, "µm")
    _check_motion(beam_shift_range_um, beam_shift_time_s, stage_latency_s, stage_speed_um_per_s,
                  cost_per_s, beam_shift_cost)
    return _motion_core(distance_um, beam_shift_range_um, beam_shift_time_s, stage_latency_s,
                        stage_speed_um_per_s, cost_per_s, beam_shift_cost, False)


@partial(jax.jit, static_argnames=("is_time",))
def _motion_core(distance, reach, t_bs, t_st, speed, per_s, within, is_time):
    """eq. 5 (is_time) or eq. 6: ``within`` inside the reach, else per_s·(t_st + t_bs + d/v)."""
    d = jnp.asarray(distance, _float(distance))
    beyond = (t_st + t_bs) + d / speed
    if not is_time:
        beyond = per_s * beyond
    return jnp.where(d <= reach, jnp.asarray(within, d.dtype) + 0 * d, beyond.astype(d.dtype))


def _distances(positions: Array, position: Array) -> Array:
    diff = positions - position
    sq = jnp.sum(diff * diff, axis=-1)
    safe = jnp.where(sq > 0, sq, 1.0)
    return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


class MotionCost(eqx.Module):
    """Motion cost (eq. 6) of moving from ``context.position`` to each of ``context.positions``.

    Attributes (defaults from paper 004 §IV.3):
        beam_shift_range_um: reach of the beam shift from the field-of-view centre, µm.
        beam_shift_time_s: time of a beam-shift move, s.
        stage_latency_s: fixed latency of a stage move, s.
        stage_speed_um_per_s: stage speed, µm/s (> 0).
        cost_per_s: α of eq. 6.
        beam_shift_cost: cost of a move within reach.
    """

    beam_shift_range_um: float | Array = BEAM_SHIFT_RANGE_UM
    beam_shift_time_s: float | Array = BEAM_SHIFT_TIME_S
    stage_latency_s: float | Array = STAGE_LATENCY_S
    stage_speed_um_per_s: float | Array = STAGE_SPEED_UM_PER_S
    cost_per_s: float | Array = 1.0
    beam_shift_cost: float | Array = 1.0

    def __check_init__(self):
        _check_motion(self.beam_shift_range_um, self.beam_shift_time_s, self.stage_latency_s,
                      self.stage_speed_um_per_s, self.cost_per_s, self.beam_shift_cost)

    def _kwargs(self) -> dict:
        return dict(beam_shift_range_um=self.beam_shift_range_um,
                    beam_shift_time_s=self.beam_shift_time_s,
                    stage_latency_s=self.stage_latency_s,
                    stage_speed_um_per_s=self.stage_speed_um_per_s)

    def time(self, distance_um: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Repositioning time (eq. 5) for distances in µm, s."""
        return motion_time(distance_um, **self._kwargs())

    def cost(self, distance_um: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Motion cost (eq. 6) for distances in µm."""
        return motion_cost(distance_um, cost_per_s=self.cost_per_s,
                           beam_shift_cost=self.beam_shift_cost, **self._kwargs())

    def __call__(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        positions = require(context, "positions", "MotionCost")
        position = require(context, "position", "MotionCost")
        return self.cost(_distances(positions, position))


def dose_cost(
    dose_e_per_A2: Float[ArrayLike, "..."],
    *,
    accumulated_e_per_A2: Float[ArrayLike, "..."] = 0.0,
    critical_dose_e_per_A2: float | None = None,
    weight: float = 1.0,
) -> Float[Array, "..."]:
    """Cost of the electron dose a measurement delivers.

    Without a critical dose this is ``weight · dose``. With a critical dose D_c each electron is
    weighted by ``exp(D/D_c)``, the inverse of the survival probability of a site that has
    received dose D under single-hit damage (see ``stemjax.physics.damage``), and the weight
    is integrated over the new dose: ``weight · D_c · e^{D_acc/D_c} · (e^{d/D_c} − 1)``. Dose on
    an already exposed site therefore costs more, and the cost tends to ``weight · d`` as
    D_c → ∞.

    Args:
        dose_e_per_A2: dose d the measurement delivers, e⁻/Å² (≥ 0), any shape.
        accumulated_e_per_A2: dose D_acc the site has already received, e⁻/Å² (≥ 0), broadcast.
        critical_dose_e_per_A2: D_c, e⁻/Å² (> 0), or None for a linear cost.
        weight: cost per e⁻/Å² (> 0).

    Returns:
        Dose cost (≥ 0), broadcast shape.
    """
    check_nonnegative("dose_e_per_A2", dose_e_per_A2, "e⁻/Å²")
    check_nonnegative("accumulated_e_per_A2", accumulated_e_per_A2, "e⁻/Å²")
    check_positive("weight", weight)
    if critical_dose_e_per_A2 is not None:
        check_positive("critical_dose_e_per_A2", critical_dose_e_per_A2, "e⁻/Å²")
    return _dose_core(dose_e_per_A2, accumulated_e_per_A2, critical_dose_e_per_A2, weight)


@jax.jit
def _dose_core(dose, accumulated, critical, weight):
    dtype = _float(dose, accumulated)
    d, acc = jnp.asarray(dose, dtype), jnp.asarray(accumulated, dtype)
    if critical is None:
        return weight * d + 0 * acc
    dc = jnp.asarray(critical, dtype)
    return weight * dc * jnp.exp(acc / dc) * jnp.expm1(d / dc)


class DoseCost(eqx.Module):
    """:func:`dose_cost` of ``context.dose`` on sites that received ``context.accumulated_dose``.

    Attributes:
        weight: cost per e⁻/Å² (> 0).
        critical_dose_e_per_A2: D_c in e⁻/Å² (> 0), or None for a cost linear in dose.
    """

    weight: float | Array = 1.0
    critical_dose_e_per_A2: float | Array | None = None

    def __check_init__(self):
        check_positive("weight", self.weight)
        if self.critical_dose_e_per_A2 is not None:
            check_positive("critical_dose_e_per_A2", self.critical_dose_e_per_A2, "e⁻/Å²")

    def __call__(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        dose = require(context, "dose", "DoseCost")
        acc = 0.0 if context.accumulated_dose is None else context.accumulated_dose
        return dose_cost(dose, accumulated_e_per_A2=acc,
                         critical_dose_e_per_A2=self.critical_dose_e_per_A2, weight=self.weight)


class _SumOfCosts(eqx.Module):
    parts: tuple

    def __call__(self, posterior: Posterior, context: Context) -> Float[Array, " m"]:
        total = self.parts[0](posterior, context)
        for part in self.parts[1:]:
            total = total + part(posterior, context)
        return total


def sum_costs(*costs: Callable[[Posterior, Context], Array]
              ) -> Callable[[Posterior, Context], Array]:
    """A cost model returning the sum of the given cost models (e.g. motion + dose)."""
    if not costs:
        raise ValueError("sum_costs needs at least one cost model; got none")
    return _SumOfCosts(tuple(costs))


def context_costs(posterior: Posterior, context: Context) -> Float[Array, " m"]:
    """The default cost model: the precomputed ``context.costs``."""
    return require(context, "costs", "cost weighting without a cost model")


def recency_factor(
    positions_um: Float[ArrayLike, "m d"],
    visited_um: Float[ArrayLike, "r d"],
    *,
    length_scale_um: float,
    mask: Bool[ArrayLike, " r"] | None = None,
    age: Float[ArrayLike, " r"] | None = None,
    strength: float = 0.9,
    decay: float = 1.0,
) -> Float[Array, " m"]:
    """Multiplier in [1 − strength, 1] that lowers candidates near recently visited positions.

    ``f(x) = 1 − strength · max_j decay^{age_j} · exp(−|x − x_j|² / (2ℓ²))`` over the valid
    visits j: 1 far from every visit, ``1 − strength`` on a visit of age 0.

    Args:
        positions_um: (m, d) candidate positions, µm.
        visited_um: (r, d) recently visited positions, µm (fixed capacity r).
        length_scale_um: ℓ, range of the penalty, µm (> 0).
        mask: (r,) True where ``visited_um`` holds a visit (default: all).
        age: (r,) steps since each visit, ≥ 0 (default 0).
        strength: depth of the penalty, in [0, 1).
        decay: per-step fading of a visit's penalty, in (0, 1] (1: no fading).

    Returns:
        (m,) factors.
    """
    check_positive("length_scale_um", length_scale_um, "µm")
    check_fraction("strength", strength, closed_low=True, closed_high=False)
    check_fraction("decay", decay, closed_low=False, closed_high=True)
    if age is not None:
        check_nonnegative("age", age)
    dtype = _float(positions_um, visited_um)
    x = jnp.asarray(positions_um, dtype)
    v = jnp.asarray(visited_um, dtype)
    if x.ndim != 2 or v.ndim != 2 or x.shape[-1] != v.shape[-1]:
        raise ValueError(
            f"positions_um (m, d) and visited_um (r, d) must share d; got {x.shape} and {v.shape}"
        )
    valid = mask_or_all(mask, v.shape[0])
    age = jnp.zeros(v.shape[:1], dtype) if age is None else jnp.asarray(age, dtype)
    if age.shape != v.shape[:1]:
        raise ValueError(f"age must have shape {v.shape[:1]}; got {age.shape}")
    return _recency_core(x, v, valid, age, length_scale_um, strength, decay)


@jax.jit
def _recency_core(x, v, valid, age, length_scale, strength, decay):
    dtype = x.dtype
    diff = x[:, None, :] - v[None, :, :]
    kernel = jnp.exp(-0.5 * jnp.sum(diff * diff, -1) / jnp.asarray(length_scale, dtype) ** 2)
    kernel = kernel * jnp.asarray(decay, dtype) ** age[None, :]
    nearest = jnp.max(jnp.where(valid[None, :], kernel, 0.0), axis=-1, initial=0.0)
    return 1.0 - jnp.asarray(strength, dtype) * nearest

