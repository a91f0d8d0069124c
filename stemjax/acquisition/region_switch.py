"""Cost-aware switching between spatial regions of a random particle library.

Paper 004 (Barakati et al., shared/papers/004, §IV.2) decides after each measurement whether
to keep measuring particles in the current field of view or to move the stage to a new region:

    R        = 1 − N_meas / N_tot                                  eq. 7
    G        = max_{i ∈ unmeasured} a(c_i)                         eq. 8
    V_stay   = R · G                                                eq. 9
    N        ~ Poisson(ρ A)                                         eq. 11
    G_new    = max_{k = 1..N} a(c_k),  c_k ~ p(c)                   eq. 12
    E_gain   = E[G_new]  (Monte Carlo; G_new = 0 when N = 0)        eq. 13
    n(c)     = 1 − exp(−d(c, C_seen) / d₀)                          eq. 14
    ã(c)     = a(c) (1 + λ_nov n(c))                                eq. 15
    C_switch = t_switch · V_stay / t_meas                           eq. 16
    V_switch = E_gain − C_switch;  switch when V_switch > 0         eq. 17

The acquisition a should be non-negative (EI, PI, max-uncertainty, their cost-weighted forms),
as in the paper: G and E_gain are then gains and an empty region gains nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from stemjax._validation import check_int_at_least, check_nonnegative, check_positive, is_concrete
from stemjax.acquisition._checks import check_simplex
from stemjax.acquisition.context import mask_or_all

SIMPLEX_DIAMETER = math.sqrt(2.0)
"""Largest Euclidean distance between two compositions (two pure end members)."""

ScoreFn = Callable[[Float[Array, "k q"]], Float[Array, " k"]]
Sampler = Callable[[PRNGKeyArray, tuple], Float[Array, "... q"]]


def _float(*values):
    return jnp.result_type(*values, float)


def remaining_opportunity(
    n_measured: ArrayLike, n_total: ArrayLike
) -> Float[Array, "..."]:
    """R = 1 − N_meas/N_tot, the unmeasured fraction of the region's particles (eq. 7).

    Args:
        n_measured: particles of the region already measured (0 ≤ N_meas ≤ N_tot).
        n_total: particles identified in the region (≥ 0); R = 0 for an empty region.
    """
    check_nonnegative("n_measured", n_measured)
    check_nonnegative("n_total", n_total)
    if is_concrete((n_measured, n_total)) and np.any(np.asarray(n_measured) > np.asarray(n_total)):
        raise ValueError(
            f"n_measured must be <= n_total; got n_measured={n_measured!r}, n_total={n_total!r}"
        )
    dtype = _float(n_measured, n_total)
    meas, tot = jnp.asarray(n_measured, dtype), jnp.asarray(n_total, dtype)
    return jnp.where(tot > 0, 1.0 - meas / jnp.where(tot > 0, tot, 1.0), 0.0)


def best_local_acquisition(
    scores: Float[ArrayLike, " n"], unmeasured: Bool[ArrayLike, " n"]
) -> Float[Array, ""]:
    """G = the largest score among unmeasured particles of the region (eq. 8); 0 if none.

    Args:
        scores: (n,) acquisition values a(c_i) of the region's particle slots.
        unmeasured: (n,) True for particles identified but not yet measured.
    """
    scores = jnp.asarray(scores, _float(scores))
    unmeasured = mask_or_all(unmeasured, scores.shape[0])
    best = jnp.max(jnp.where(unmeasured, scores, -jnp.inf))
    return jnp.where(jnp.any(unmeasured), best, 0.0)


def stay_value(remaining: ArrayLike, best_local: ArrayLike) -> Float[Array, "..."]:
    """V_stay = R · G, the value of continuing in the current field of view (eq. 9)."""
    return jnp.asarray(remaining, _float(remaining)) * jnp.asarray(best_local, _float(best_local))


class DirichletCompositions(eqx.Module):
    """Composition prior p(c) = Dirichlet(concentration): ``prior(key, shape) -> (*shape, q)``.

    All-ones concentration is the uniform distribution on the simplex (the Monte Carlo model
    of paper 004 §IV.3); it is drawn as normalised unit exponentials, without gamma sampling.
    """

    concentration: Float[Array, " q"]
    uniform: bool = eqx.field(static=True, default=False)

    def __call__(self, key: PRNGKeyArray, shape: tuple) -> Float[Array, "... q"]:
        if self.uniform:
            dtype = self.concentration.dtype
            u = jax.random.uniform(key, (*shape, self.concentration.shape[0]), dtype,
                                   minval=jnp.finfo(dtype).tiny, maxval=1.0)
            e = -jnp.log(u)  # unit exponentials
            return e / jnp.sum(e, axis=-1, keepdims=True)
        return jax.random.dirichlet(key, self.concentration, shape)


def dirichlet_compositions(concentration: Float[ArrayLike, " q"]) -> DirichletCompositions:
    """A Dirichlet composition prior for :func:`expected_switch_gain` (ones: uniform simplex)."""
    check_positive("concentration", concentration)
    alpha = jnp.asarray(concentration, _float(concentration))
    if alpha.ndim != 1 or alpha.shape[0] < 2:
        raise ValueError(f"concentration must have shape (q,) with q >= 2; got {alpha.shape}")
    uniform = bool(is_concrete(alpha) and np.all(np.asarray(alpha) == 1.0))
    return DirichletCompositions(alpha, uniform)


def poisson_capacity(mean_count: float) -> int:
    """Particle slots enough for N ~ Poisson(mean_count): ⌈λ + 10√λ + 10⌉ (P(N > it) < 1e-9)."""
    lam = float(mean_count)
    return int(math.ceil(lam + 10.0 * math.sqrt(lam) + 10.0))


def expected_switch_gain(
    key: PRNGKeyArray,
    score_fn: ScoreFn,
    *,
    density_per_um2: float | Float[Array, ""],
    area_um2: float | Float[Array, ""],
    sample_compositions: Sampler,
    n_samples: int = 1024,
    max_particles: int | None = None,
) -> Float[Array, ""]:
    """E_gain = E[max_k a(c_k)] over a new region (eqs. 11–13), by Monte Carlo.

    Each of ``n_samples`` draws takes N ~ Poisson(ρA) particles with compositions from the
    prior and keeps the largest score among them (0 when N = 0). All draws are scored in one
    call of ``score_fn`` on a fixed (n_samples × max_particles, q) batch with a mask, so the
    estimate is vectorised and jit/vmap-compatible.

    Args:
        key: PRNG key.
        score_fn: a(c): (k, q) compositions → (k,) acquisition values (≥ 0 by convention).
            For the novelty-augmented ã of eq. 15 wrap it with :func:`with_novelty`.
        density_per_um2: particle density ρ of the explored region, µm⁻² (≥ 0).
        area_um2: area A of the candidate region, µm² (≥ 0).
        sample_compositions: prior p(c), ``(key, shape) -> (*shape, q)``, e.g.
            :func:`dirichlet_compositions`.
        n_samples: Monte Carlo draws (static, ≥ 1); the standard error falls as 1/√n.
        max_particles: static number of particle slots per draw; N is clipped to it. Default
            :func:`poisson_capacity` of ρA (needs concrete ρ and A).

    Returns:
        () Monte Carlo estimate of E_gain.
    """
    n_samples = check_int_at_least("n_samples", n_samples, 1)
    check_nonnegative("density_per_um2", density_per_um2, "µm⁻²")
    check_nonnegative("area_um2", area_um2, "µm²")
    if max_particles is None:
        if not is_concrete((density_per_um2, area_um2)):
            raise ValueError(
                "expected_switch_gain needs a static max_particles when density_per_um2 or "
                "area_um2 is traced; pass e.g. poisson_capacity(max expected count)"
            )
        max_particles = poisson_capacity(float(density_per_um2) * float(area_um2))
    max_particles = check_int_at_least("max_particles", max_particles, 1)
    if is_concrete(key):  # a few concrete draws show whether the prior is on the simplex
        check_simplex("sample_compositions(key, shape)", _probe_draw(sample_compositions, key))
    dtype = _float(density_per_um2, area_um2)
    return _switch_gain_core(key, jnp.asarray(density_per_um2, dtype),
                             jnp.asarray(area_um2, dtype), score_fn, sample_compositions,
                             n_samples, max_particles)


@eqx.filter_jit
def _probe_draw(sample_compositions, key):
    return sample_compositions(key, (4,))


@eqx.filter_jit
def _switch_gain_core(key, density, area, score_fn, sample_compositions, n_samples,
                      max_particles):
    count_key, comp_key = jax.random.split(key)
    mean_count = density * area
    counts = _poisson_counts(count_key, mean_count, n_samples, max_particles)
    comps = sample_compositions(comp_key, (n_samples, max_particles))
    q = comps.shape[-1]
    scores = jnp.reshape(score_fn(jnp.reshape(comps, (n_samples * max_particles, q))),
                         (n_samples, max_particles))
    present = jnp.arange(max_particles)[None, :] < counts[:, None]
    best = jnp.max(jnp.where(present, scores, -jnp.inf), axis=-1)
    return jnp.mean(jnp.where(counts > 0, best, 0.0))


def poisson_from_uniform(u: Float[Array, "..."], rate: ArrayLike, capacity: int
                         ) -> Int[Array, "..."]:  # fmt: skip
    """N ~ Poisson(rate) clipped at ``capacity`` for each uniform in ``u``, by inverting the CDF.

    Each uniform is compared with the (capacity,) cumulative probabilities: no rejection
    loop, so it compiles and runs fast and vectorises over campaigns. ``rate`` ≤ 0 gives 0.
    """
    rate = jnp.asarray(rate, u.dtype)
    k = jnp.arange(capacity, dtype=u.dtype)
    safe = jnp.where(rate > 0, rate, 1.0)
    log_pmf = k * jnp.log(safe) - safe - jax.scipy.special.gammaln(k + 1.0)
    pmf = jnp.where(rate > 0, jnp.exp(log_pmf), (k == 0).astype(u.dtype))
    cdf = jnp.cumsum(pmf)  # P(N <= k), k < capacity
    return jnp.sum(u[..., None] >= cdf, axis=-1).astype(jnp.int32)


def _poisson_counts(key: PRNGKeyArray, rate: Array, n: int, capacity: int) -> Array:
    """(n,) draws of N ~ Poisson(rate) clipped at ``capacity``."""
    return poisson_from_uniform(jax.random.uniform(key, (n,), rate.dtype), rate, capacity)


def compositional_novelty(
    compositions: Float[ArrayLike, "k q"],
    seen: Float[ArrayLike, "s q"],
    seen_mask: Bool[ArrayLike, " s"] | None = None,
    *,
    length_scale: float = SIMPLEX_DIAMETER,
) -> Float[Array, " k"]:
    """n(c) = 1 − exp(−d(c, C_seen)/d₀), d the distance to the nearest seen composition (eq. 14).

    Args:
        compositions: (k, q) compositions (fractions ≥ 0 summing to 1).
        seen: (s, q) compositions measured so far (fixed capacity s).
        seen_mask: (s,) True where ``seen`` holds a measurement (default: all). With none
            seen, n = 1.
        length_scale: d₀ > 0, composition units (default √2, the simplex's diameter).

    Returns:
        (k,) novelty in [0, 1].
    """
    check_simplex("compositions", compositions)
    check_simplex("seen", seen, seen_mask)
    check_positive("length_scale", length_scale)
    dtype = _float(compositions, seen)
    c, s = jnp.asarray(compositions, dtype), jnp.asarray(seen, dtype)
    if c.ndim != 2 or s.ndim != 2 or c.shape[-1] != s.shape[-1]:
        raise ValueError(
            f"compositions (k, q) and seen (s, q) must share q; got {c.shape} and {s.shape}"
        )
    return _novelty_core(c, s, mask_or_all(seen_mask, s.shape[0]), length_scale)


@jax.jit
def _novelty_core(c, s, valid, length_scale):
    dtype = c.dtype
    diff = c[:, None, :] - s[None, :, :]
    sq = jnp.sum(diff * diff, -1)
    nearest_sq = jnp.min(jnp.where(valid[None, :], sq, jnp.inf), axis=-1, initial=jnp.inf)
    finite = jnp.isfinite(nearest_sq)
    safe = jnp.where(finite & (nearest_sq > 0), nearest_sq, 1.0)
    distance = jnp.where(finite & (nearest_sq > 0), jnp.sqrt(safe), 0.0)
    novelty = -jnp.expm1(-distance / jnp.asarray(length_scale, dtype))
    return jnp.where(finite, novelty, 1.0)


def novelty_weighted(
    scores: Float[ArrayLike, "..."],
    novelty: Float[ArrayLike, "..."],
    *,
    weight: float | Float[Array, ""] = 1.0,
    log_space: bool = False,
) -> Float[Array, "..."]:
    """ã = a (1 + λ n) (eq. 15) for a ≥ 0; a / (1 + λ n) for a < 0; log a + log1p(λ n) in log space.

    Args:
        scores: acquisition values a (or log a when ``log_space``), any shape.
        novelty: n(c) in [0, 1], broadcast against ``scores``.
        weight: λ_nov ≥ 0.
        log_space: scores are log-scores.
    """
    check_nonnegative("weight", weight)
    return _novelty_weighted_core(scores, novelty, weight, bool(log_space))


@partial(jax.jit, static_argnames=("log_space",))
def _novelty_weighted_core(scores, novelty, weight, log_space):
    dtype = _float(scores, novelty)
    a = jnp.asarray(scores, dtype)
    boost = jnp.asarray(weight, dtype) * jnp.asarray(novelty, dtype)
    if log_space:
        return a + jnp.log1p(boost)
    return jnp.where(a >= 0, a * (1.0 + boost), a / (1.0 + boost))


def with_novelty(
    score_fn: ScoreFn,
    seen: Float[ArrayLike, "s q"],
    seen_mask: Bool[ArrayLike, " s"] | None = None,
    *,
    weight: float = 1.0,
    length_scale: float = SIMPLEX_DIAMETER,
) -> ScoreFn:
    """The augmented acquisition ã(c) = a(c)(1 + λ n(c)) of eq. 15, as a score function of c."""
    check_nonnegative("weight", weight)

    def augmented(compositions: Array) -> Array:
        novelty = compositional_novelty(compositions, seen, seen_mask, length_scale=length_scale)
        return novelty_weighted(score_fn(compositions), novelty, weight=weight)

    return augmented


def switch_cost(
    t_switch_s: float | Float[ArrayLike, "..."],
    v_stay: Float[ArrayLike, "..."],
    t_meas_s: float | Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """C_switch = t_switch · V_stay / t_meas, the local gain forgone while switching (eq. 16).

    Args:
        t_switch_s: time of the switch (stage motion, eq. 5, plus realignment and EDX), s (≥ 0).
        v_stay: V_stay of eq. 9.
        t_meas_s: time of one functional measurement (e.g. EELS), s (> 0).
    """
    check_nonnegative("t_switch_s", t_switch_s, "s")
    check_positive("t_meas_s", t_meas_s, "s")
    dtype = _float(t_switch_s, v_stay, t_meas_s)
    t_switch, t_meas = jnp.asarray(t_switch_s, dtype), jnp.asarray(t_meas_s, dtype)
    return t_switch * jnp.asarray(v_stay, dtype) / t_meas


def switch_value(e_gain: ArrayLike, c_switch: ArrayLike) -> Float[Array, "..."]:
    """V_switch = E_gain − C_switch (eq. 17); switch to a new region when it is > 0."""
    dtype = _float(e_gain, c_switch)
    return jnp.asarray(e_gain, dtype) - jnp.asarray(c_switch, dtype)


class SwitchDecision(eqx.Module):
    """Every quantity of the region-switch rule (eqs. 7–17) for one decision.

    Attributes:
        remaining: R (eq. 7).
        best_local: G (eq. 8).
        stay_value: V_stay (eq. 9).
        expected_gain: E_gain (eq. 13).
        switch_cost: C_switch (eq. 16).
        switch_value: V_switch (eq. 17).
        switch: V_switch > 0.
    """

    remaining: Float[Array, ""]
    best_local: Float[Array, ""]
    stay_value: Float[Array, ""]
    expected_gain: Float[Array, ""]
    switch_cost: Float[Array, ""]
    switch_value: Float[Array, ""]
    switch: Bool[Array, ""]


def region_switch(
    key: PRNGKeyArray,
    local_scores: Float[ArrayLike, " n"],
    measured: Bool[ArrayLike, " n"],
    score_fn: ScoreFn,
    *,
    particles: Bool[ArrayLike, " n"] | None = None,
    density_per_um2: float | Float[Array, ""],
    area_um2: float | Float[Array, ""],
    t_switch_s: float | Float[Array, ""],
    t_meas_s: float | Float[Array, ""],
    sample_compositions: Sampler,
    n_samples: int = 1024,
    max_particles: int | None = None,
) -> SwitchDecision:
    """Decide whether to leave the current region (paper 004, eqs. 7–17).

    Args:
        key: PRNG key for the Monte Carlo estimate of E_gain.
        local_scores: (n,) acquisition values of the current region's particle slots.
        measured: (n,) True for particles already measured.
        score_fn: a(c) for compositions of a new region (see :func:`expected_switch_gain`).
        particles: (n,) True for slots holding an identified particle (default: all).
        density_per_um2, area_um2, sample_compositions, n_samples, max_particles: as in
            :func:`expected_switch_gain`.
        t_switch_s: time a switch takes, s (≥ 0).
        t_meas_s: time of one measurement, s (> 0).
    """
    local_scores = jnp.asarray(local_scores, _float(local_scores))
    n = local_scores.shape[0]
    present = mask_or_all(particles, n)
    done = mask_or_all(measured, n) & present
    remaining = remaining_opportunity(jnp.sum(done), jnp.sum(present))
    best_local = best_local_acquisition(local_scores, present & ~done)
    v_stay = stay_value(remaining, best_local)
    gain = expected_switch_gain(key, score_fn, density_per_um2=density_per_um2, area_um2=area_um2,
                                sample_compositions=sample_compositions, n_samples=n_samples,
                                max_particles=max_particles)
    cost = switch_cost(t_switch_s, v_stay, t_meas_s)
    value = switch_value(gain, cost)
    return SwitchDecision(remaining, best_local, v_stay, gain, cost, value, value > 0)
