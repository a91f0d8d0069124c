"""Cost-aware exploration of a random particle library: one campaign as pure functions.

The loop of paper 004 (§IV, Fig. 2). A campaign starts in a field of view drawn from its key:
it retunes, takes an overview scan and an EDX frame (every particle found gets a composition,
eqs. 2–3) and measures 3 random particles by EELS (the seeds). Then, for a fixed number of
steps, under ``lax.scan``:

1. condition the GP (measured compositions → EELS readings) and record its mean uncertainty
   and error over a composition grid;
2. score the unmeasured particles within beam-shift reach, S = a/C_move (eq. 4), and decide
   whether to leave the region (the policy's rule; eqs. 7–17 for ``"value"``): a move pays
   stage travel and retune (eq. 5), an overview scan and an EDX frame of the new region;
3. measure the best particle of the (possibly new) region by EELS (beam shift + EELS);
4. append the reading to the fixed-capacity data buffer (and refit, if the policy asks).

Time is counted per kind of action (:data:`~stemjax.worlds.library_measurements.ACTIONS`).
A step whose actions would take the campaign past its time budget is not taken; the campaign
then stops (its later records repeat its final state with ``done`` set), so the budget is
never exceeded. :func:`run` is one campaign, :func:`run_many` ``vmap`` over campaigns (each
with its own library), :func:`simulate` draws the libraries from the keys as well.

Per-step records (arrays of shape (steps,), except ``composition`` (steps, q)):

- ``particle`` (−1 when nothing was measured), ``x_um``, ``y_um``, ``composition``,
  ``reading``: what was measured and where;
- ``region``: the region after the step's decision; ``switched``, ``switch_distance_um``,
  ``neighbour`` (the new region touches the old one, sides or corners);
- ``time_<kind>_s`` for each action kind, and ``elapsed_s`` (cumulative, seeds included);
- ``uncertainty`` (mean posterior standard deviation) and ``error`` (mean |μ − f|) over the
  evaluation compositions, of the model that made the step's decision;
- ``region_fraction``: fraction of the found particles of the current region measured after
  the step;
- ``stay_value`` (V_stay, eq. 9), ``expected_gain`` (E_gain, eq. 13) and ``switch_value``
  (the best V_switch, eq. 17) of the decision; ``measured``, ``done``.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from stemjax import acquisition as acq
from stemjax._validation import check_int_at_least, is_concrete
from stemjax.acquisition._checks import check_simplex
from stemjax.campaign.library_policy import SWITCH_RULES, LibraryPolicy, _expected_max_poisson
from stemjax.models import GPData, GPParams, Kernel, fit
from stemjax.models.fit import adam
from stemjax.models.gp import ConditionedGP, _condition, _masked_mean, jitter
from stemjax.posterior import Posterior
from stemjax.worlds.library_measurements import (
    ACTIONS,
    Instrument,
    LibraryObservations,
    measurement_times,
    observe_library,
    region_change_times,
)
from stemjax.worlds.particle_library import (
    LibraryConfig,
    ParticleLibrary,
    _target,
    eval_grid,
    make_library,
)

RECORDS = (
    "particle", "x_um", "y_um", "composition", "reading", "region", "switched",
    "switch_distance_um", "neighbour", *(f"time_{k}_s" for k in ACTIONS), "elapsed_s",
    "uncertainty", "error", "region_fraction", "stay_value", "expected_gain", "switch_value",
    "measured", "done",
)  # fmt: skip
"""Names of the per-step records of :func:`run`."""


class LibraryState(eqx.Module):
    """What one library campaign carries from step to step (fixed shapes).

    Attributes:
        key: PRNG key of the next step.
        data: GPData of measured compositions → EELS readings, capacity seeds + steps.
        params: the GP's hyperparameters; opt_state: their optimiser state (refits).
        chol, chol_inv: (n, n) Cholesky factor L of the masked K (identity on free slots)
            and L⁻¹, extended by one row per measurement (see :func:`extend_factor`).
        measured: (P,) True for particles measured by EELS.
        visited: (R,) True for regions mapped (overview + EDX) so far.
        region: () current region.
        time_s: (6,) cumulative time per action kind, s (order of ``ACTIONS``).
        in_region: () measurements since arriving in the current region.
        done: () True once the time budget stopped the campaign.
        step: () steps taken.
        seeds: (s,) particle indices of the seed measurements (−1 where the start region had
            fewer particles than seeds).
    """

    key: PRNGKeyArray
    data: GPData
    params: GPParams
    opt_state: optax.OptState
    chol: Float[Array, "n n"]
    chol_inv: Float[Array, "n n"]
    measured: Bool[Array, " P"]
    visited: Bool[Array, " R"]
    region: Int[Array, ""]
    time_s: Float[Array, " 6"]
    in_region: Int[Array, ""]
    done: Bool[Array, ""]
    step: Int[Array, ""]
    seeds: Int[Array, " s"]


def _params(policy: LibraryPolicy, instrument: Instrument, data: GPData) -> GPParams:
    s = policy.surrogate
    noise = s.noise_variance or max(instrument.eels_noise**2, 1e-6)
    dtype = data.y.dtype
    return GPParams(Kernel(s.kind, s.lengthscale, s.variance, dtype=dtype), noise,
                    _data_mean(data))  # fmt: skip


def _data_mean(data: GPData) -> Array:
    return _masked_mean(data.y, data.mask)


def _initial_times(instrument: Instrument, n_seeds) -> Array:
    t = np.zeros(len(ACTIONS), np.float32)
    t[ACTIONS.index("retune")] = instrument.retune_s
    t[ACTIONS.index("overview")] = instrument.overview_s
    t[ACTIONS.index("edx")] = instrument.edx_frame_s
    return jnp.asarray(t) + n_seeds * measurement_times(instrument)


def init_state(
    key: PRNGKeyArray, library: ParticleLibrary, policy: LibraryPolicy, instrument: Instrument,
    obs: LibraryObservations, steps: int, n_seeds: int = 3,
) -> LibraryState:  # fmt: skip
    """Start a campaign: pick a region with at least ``n_seeds`` particles found (any region
    if none has so many), map it, measure ``n_seeds`` random particles of it by EELS."""
    k_draw, k_next = jax.random.split(key)
    found_slots = library.member_mask & obs.found[library.members]  # (R, M)
    counts = jnp.sum(found_slots, axis=-1)
    enough = counts >= n_seeds
    enough = jnp.where(jnp.any(enough), enough, counts == jnp.max(counts))
    n_regions, slots = found_slots.shape
    draws = jax.random.uniform(k_draw, (n_regions + slots,))  # one draw: start region, seeds
    start = jnp.argmax(jnp.where(enough, draws[:n_regions], -1.0)).astype(jnp.int32)
    idx, ok = library.members[start], found_slots[start]
    u = draws[n_regions:]
    _, pick = jax.lax.top_k(jnp.where(ok, u, -1.0), n_seeds)
    seeds, seed_ok = idx[pick], ok[pick]
    capacity = n_seeds + steps
    q = obs.compositions.shape[-1]
    x = jnp.zeros((capacity, q), obs.compositions.dtype).at[:n_seeds].set(obs.compositions[seeds])
    y = jnp.zeros((capacity,), obs.readings.dtype).at[:n_seeds].set(obs.readings[seeds])
    mask = jnp.zeros((capacity,), bool).at[:n_seeds].set(seed_ok)
    data = GPData(x, jnp.where(mask, y, 0.0), mask)
    params = _params(policy, instrument, data)
    opt_state = adam(policy.surrogate.learning_rate).init(eqx.filter(params, eqx.is_inexact_array))
    gp = _condition(params, data)
    measured = jnp.zeros(library.present.shape, bool).at[seeds].max(seed_ok)
    visited = jnp.zeros(library.region_areas_um2.shape, bool).at[start].set(True)
    n_ok = jnp.sum(seed_ok)
    return LibraryState(
        k_next, data, params, opt_state, gp.chol, gp.chol_inv, measured, visited, start,
        _initial_times(instrument, n_ok), n_ok.astype(jnp.int32), jnp.zeros((), bool),
        jnp.zeros((), jnp.int32), jnp.where(seed_ok, seeds, -1).astype(jnp.int32),
    )  # fmt: skip


def extend_factor(
    params: GPParams, data: GPData, chol: Array, chol_inv: Array, x: Array, slot: Array
) -> tuple[Array, Array]:
    """L and L⁻¹ of the masked K after adding the point ``x`` (q,) in the free ``slot``.

    The valid slots form a prefix, so L = blockdiag(L₀, I) gains the row [lᵀ, d] with
    l = L₀⁻¹ k(X, x) and d = (k(x, x) + σ² + jitter − lᵀl)^{1/2}, and L⁻¹ the row
    [−lᵀL₀⁻¹/d, 1/d]: O(n²) instead of the O(n³) of a new factorisation, with the same
    jitter as :func:`stemjax.models.gp.condition`. Valid for fixed hyperparameters.
    """
    kernel = params.kernel
    k_vec = kernel.from_scaled(kernel.scale(x[None, :]), kernel.scale(data.x))[0]
    k_vec = jnp.where(data.mask, k_vec, 0.0)
    l = chol_inv @ k_vec
    diag = kernel.variance + params.noise + jitter(chol.dtype, kernel.variance)
    d = jnp.sqrt(jnp.maximum(diag - jnp.dot(l, l), jnp.finfo(chol.dtype).tiny))
    e = jax.nn.one_hot(slot, chol.shape[0], dtype=chol.dtype)
    return chol.at[slot].set(l + d * e), chol_inv.at[slot].set((e - l @ chol_inv) / d)


def conditioned(params: GPParams, data: GPData, chol: Array, chol_inv: Array) -> ConditionedGP:
    """The GP conditioned on ``data`` from its carried factors (no new factorisation)."""
    kernel = params.kernel
    resid = jnp.where(data.mask, data.y - params.mean, 0.0)
    alpha = chol_inv.T @ (chol_inv @ resid)
    q = data.x.shape[-1]
    ones = jnp.ones((q,), data.x.dtype)
    return ConditionedGP(params, 0.0 * ones, ones, kernel.scale(data.x), data.mask, chol,
                         chol_inv, alpha, jnp.asarray(jnp.nan, data.y.dtype))  # fmt: skip


def _rule(policy: LibraryPolicy) -> tuple[int, int]:
    return SWITCH_RULES.index(policy.switch), policy.switch_every


def _core(policy: LibraryPolicy) -> tuple[LibraryPolicy, Array]:
    """The policy without its name and switch rule (so that rules share one compilation),
    and the rule as an int array (code, switch_every)."""
    core = dataclasses.replace(policy, name="", switch="value", switch_every=1)
    return core, jnp.asarray(_rule(policy), jnp.int32)


def _local_scores(policy, post, positions, centre, best, data, instrument, reach):
    """S = a/C_move (eq. 4) for candidates at ``positions`` seen from the FOV ``centre``."""
    diff = positions - centre
    dist = jnp.sqrt(jnp.sum(diff * diff, axis=-1))
    costs = acq.motion_cost(
        dist, beam_shift_range_um=reach, beam_shift_time_s=instrument.beam_shift_s,
        stage_latency_s=instrument.retune_s, stage_speed_um_per_s=instrument.stage_speed_um_per_s,
        cost_per_s=instrument.cost_per_s,
    )  # fmt: skip
    context = acq.Context(best=best, costs=costs, outcomes=data.y, outcome_mask=data.mask)
    return policy.acquisition(post, context)


def _split(post: Posterior, sizes) -> list[Posterior]:
    cuts = np.cumsum(sizes)[:-1]
    means, variances = jnp.split(post.mean, cuts), jnp.split(post.variance, cuts)
    return [Posterior(m, v) for m, v in zip(means, variances)]


def step(
    state: LibraryState, library: ParticleLibrary, policy: LibraryPolicy, instrument: Instrument,
    obs: LibraryObservations, eval_c: Array, eval_f: Array, budget_s: Array,
    rule: Int[Array, " 2"] | None = None,
) -> tuple[LibraryState, dict[str, Array]]:  # fmt: skip
    """One decision and one measurement (see the module doc). Returns the new state and records.

    ``rule``: (code, switch_every) of the switch rule (code 0 ``value``, 1 ``every``,
    2 ``exhaust``), as an array so that the rules share one compilation; default the policy's.
    """
    key, k_pool = jax.random.split(state.key)
    reach = instrument.reach_um(library.config)
    data = state.data
    params = state.params
    if policy.surrogate.refit_steps:  # new hyperparameters: factor afresh
        gp = _condition(params, data)
    else:  # fixed kernel: the carried factor; the prior mean follows the readings
        params = eqx.tree_at(lambda p: p.mean, params, _data_mean(data))
        gp = conditioned(params, data, state.chol, state.chol_inv)
    best = jnp.max(jnp.where(data.mask, data.y, -jnp.inf))
    r = state.region
    centres = library.region_centres_um
    found_slots = library.member_mask & obs.found[library.members]  # (R, M)

    idx, found = library.members[r], found_slots[r]
    open_ = found & ~state.measured[idx]
    prior = acq.dirichlet_compositions(jnp.asarray(library.config.concentration_vector()))
    pool = prior(k_pool, (policy.gain_pool,)).astype(eval_c.dtype)
    local_post, pool_post, eval_post = _split(
        gp.predict(jnp.concatenate([obs.compositions[idx], pool, eval_c])),
        (idx.shape[0], pool.shape[0], eval_c.shape[0]),
    )  # fmt: skip
    local = _local_scores(policy, local_post, library.positions_um[idx], centres[r], best, data,
                          instrument, reach)  # fmt: skip
    pool_context = acq.Context(best=best, costs=jnp.ones(pool.shape[:1], pool.dtype),
                               outcomes=data.y, outcome_mask=data.mask)  # fmt: skip
    pool_scores = policy.acquisition(pool_post, pool_context)
    if policy.novelty_weight:  # eq. 15
        novelty = acq.compositional_novelty(pool, data.x, data.mask)
        pool_scores = acq.novelty_weighted(pool_scores, novelty, weight=policy.novelty_weight)

    # eqs. 7–9: what staying offers
    remaining = acq.remaining_opportunity(jnp.sum(found & state.measured[idx]), jnp.sum(found))
    best_local = acq.best_local_acquisition(local, open_)
    v_stay = acq.stay_value(remaining, best_local)
    # eqs. 11–13: what a new region offers, ρ estimated from the regions mapped so far
    areas = library.region_areas_um2
    seen = jnp.sum(jnp.where(state.visited[:, None], found_slots, False))
    density = seen / jnp.maximum(jnp.sum(jnp.where(state.visited, areas, 0.0)), 1e-12)
    gain = _expected_max_poisson(pool_scores, density * areas)  # (R,)
    # eqs. 16–17: the net value of moving to each region not yet visited
    dist = jnp.sqrt(jnp.sum((centres - centres[r]) ** 2, axis=-1))
    change = region_change_times(dist, instrument, reach)  # (R, 6)
    t_switch = jnp.sum(change, axis=-1)
    value = acq.switch_value(gain, acq.switch_cost(t_switch, v_stay, instrument.eels_s))
    eligible = ~state.visited
    value = jnp.where(eligible, value, -jnp.inf)
    by_value = jnp.argmax(value).astype(jnp.int32)
    nearest = jnp.argmin(jnp.where(eligible, t_switch, jnp.inf)).astype(jnp.int32)
    code, every = _rule(policy) if rule is None else (rule[0], rule[1])
    want = jnp.where(code == 0, value[by_value] > 0, (code == 1) & (state.in_region >= every))
    target = jnp.where(code == 0, by_value, nearest)
    want = (want | ~jnp.any(open_)) & jnp.any(eligible)
    new_region = jnp.where(want, target, r)

    # measure the best particle within reach of the (new) field of view
    idx2 = library.members[new_region]
    open2 = found_slots[new_region] & ~state.measured[idx2]
    post2 = gp.predict(obs.compositions[idx2])
    scores2 = _local_scores(policy, post2, library.positions_um[idx2], centres[new_region], best,
                            data, instrument, reach)  # fmt: skip
    choice = jnp.argmax(jnp.where(open2 & ~jnp.isnan(scores2), scores2, -jnp.inf))
    has = jnp.any(open2)
    particle = idx2[choice]
    t_step = (jnp.where(want, change[new_region], 0.0)
              + jnp.where(has, measurement_times(instrument), 0.0))  # fmt: skip
    act = ~state.done & (jnp.sum(state.time_s) + jnp.sum(t_step) <= budget_s)
    moved, took = act & want, act & has

    slot = jnp.argmin(data.mask)
    new_data = eqx.tree_at(
        lambda d: (d.x, d.y, d.mask), data,
        (data.x.at[slot].set(jnp.where(took, obs.compositions[particle], data.x[slot])),
         data.y.at[slot].set(jnp.where(took, obs.readings[particle], data.y[slot])),
         data.mask.at[slot].set(data.mask[slot] | took)),
    )  # fmt: skip
    new_params, new_opt = state.params, state.opt_state
    chol, chol_inv = state.chol, state.chol_inv
    if not policy.surrogate.refit_steps:
        grown = extend_factor(params, data, chol, chol_inv, obs.compositions[particle], slot)
        chol, chol_inv = (jnp.where(took, g, f) for g, f in zip(grown, (chol, chol_inv)))
        new_params = eqx.tree_at(lambda p: p.mean, params, _data_mean(new_data))
    else:
        res = fit(state.params, new_data, steps=policy.surrogate.refit_steps,
                  optimizer=adam(policy.surrogate.learning_rate), opt_state=state.opt_state)  # fmt: skip
        keep = lambda new, old: jnp.where(took, new, old)  # noqa: E731
        new_params = jax.tree.map(keep, res.params, state.params)
        new_opt = jax.tree.map(keep, res.opt_state, state.opt_state)
    measured = state.measured.at[particle].set(state.measured[particle] | took)
    region = jnp.where(act, new_region, r)
    spent = jnp.where(act, t_step, 0.0)
    time_s = state.time_s + spent
    in_region = jnp.where(moved, 0, state.in_region) + took.astype(jnp.int32)
    visited = state.visited.at[region].set(True)

    cells = library.region_cells
    hop = jnp.max(jnp.abs(cells[new_region] - cells[r]))
    region_found = found_slots[region]
    frac = jnp.sum(region_found & measured[library.members[region]]) / jnp.maximum(
        jnp.sum(region_found), 1)
    nan = jnp.asarray(jnp.nan, obs.readings.dtype)
    records = {
        "particle": jnp.where(took, particle, -1).astype(jnp.int32),
        "x_um": jnp.where(took, library.positions_um[particle, 0], nan),
        "y_um": jnp.where(took, library.positions_um[particle, 1], nan),
        "composition": jnp.where(took, obs.compositions[particle], nan),
        "reading": jnp.where(took, obs.readings[particle], nan),
        "region": region,
        "switched": moved,
        "switch_distance_um": jnp.where(moved, dist[new_region], 0.0),
        "neighbour": moved & (hop == 1),
        **{f"time_{k}_s": spent[i] for i, k in enumerate(ACTIONS)},
        "elapsed_s": jnp.sum(time_s),
        "uncertainty": jnp.mean(eval_post.std),
        "error": jnp.mean(jnp.abs(eval_post.mean - eval_f)),
        "region_fraction": frac,
        "stay_value": v_stay,
        "expected_gain": gain[by_value],
        "switch_value": value[by_value],
        "measured": took,
        "done": ~act,
    }
    new = LibraryState(key, new_data, new_params, new_opt, chol, chol_inv, measured, visited,
                       region, time_s, in_region, state.done | ~act, state.step + 1,
                       state.seeds)  # fmt: skip
    return new, records


# --------------------------------------------------------------------------------------------
# public entry points


def _key_batch_shape(key) -> tuple:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    return key.shape if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key.shape[:-1]


def _check_key(key) -> None:
    shape = _key_batch_shape(key)
    if shape != ():
        raise ValueError(f"key must be a single PRNG key (use run_many for many); got a key array "
                         f"of batch shape {shape}")  # fmt: skip


def _check_keys(keys) -> int:
    shape = _key_batch_shape(keys)
    if len(shape) != 1:
        raise ValueError(f"keys must be a 1-D array of PRNG keys, one per campaign (e.g. "
                         f"jax.random.split(key, C)); got a key array of batch shape {shape}")  # fmt: skip
    return shape[0]


def _check_run_args(library, policy, instrument, steps, n_seeds, time_budget_s, eval_compositions):
    if not isinstance(library, ParticleLibrary):
        raise TypeError(f"library must be a ParticleLibrary; got {type(library)!r}")
    if not isinstance(policy, LibraryPolicy):
        raise TypeError(f"policy must be a LibraryPolicy; got {type(policy)!r}")
    if not isinstance(instrument, Instrument):
        raise TypeError(f"instrument must be an Instrument; got {type(instrument)!r}")
    steps = check_int_at_least("steps", steps, 1)
    n_seeds = check_int_at_least("n_seeds", n_seeds, 1)
    if n_seeds > library.config.region_slots:
        raise ValueError(f"n_seeds must be at most {library.config.region_slots} (particle slots "
                         f"per region); got {n_seeds}")  # fmt: skip
    if is_concrete(time_budget_s):
        budget = np.asarray(time_budget_s, float)
        start = (instrument.retune_s + instrument.overview_s + instrument.edx_frame_s
                 + n_seeds * (instrument.beam_shift_s + instrument.eels_s))  # fmt: skip
        if np.any(np.isnan(budget)) or np.any(budget < start):
            raise ValueError(
                f"time_budget_s must be >= {start:g} s (retune, overview, one EDX frame and "
                f"{n_seeds} seed measurements) or inf; got {time_budget_s!r}"
            )
    q = library.config.n_components
    if eval_compositions is None:
        eval_compositions = eval_grid(q)
    check_simplex("eval_compositions", eval_compositions)
    c = jnp.asarray(eval_compositions, library.compositions.dtype)
    if c.ndim != 2 or c.shape[-1] != q:
        raise ValueError(f"eval_compositions must have shape (E, {q}); got {c.shape}")
    return steps, n_seeds, c


def run(
    key: PRNGKeyArray, library: ParticleLibrary, policy: LibraryPolicy,
    instrument: Instrument = Instrument(), steps: int = 150, *, n_seeds: int = 3,
    time_budget_s: float = math.inf, eval_compositions: Float[Array, "E q"] | None = None,
) -> tuple[LibraryState, dict[str, Array]]:  # fmt: skip
    """One library campaign: seeds, then ``steps`` steps under ``lax.scan``.

    Args:
        key: the campaign's PRNG key (its EDX and EELS readings, start region, seeds, pools).
        library: the :class:`~stemjax.worlds.ParticleLibrary` explored.
        policy: the :class:`LibraryPolicy` (particle choice and region switching).
        instrument: times and detector settings (R2 defaults).
        steps: decisions after the seeds (static; the paper: 150 in 3-D, 300 in 4-D and 5-D).
        n_seeds: random seed particles measured first in the start region (static).
        time_budget_s: total time allowed, s (inf: only ``steps`` limits the campaign).
        eval_compositions: (E, q) compositions for the uncertainty and error records
            (default :func:`~stemjax.worlds.particle_library.eval_grid`).

    Returns:
        The final :class:`LibraryState` and the records, {name: (steps, ...)} (see
        :data:`RECORDS`).
    """
    _check_key(key)
    steps, n_seeds, c = _check_run_args(library, policy, instrument, steps, n_seeds,
                                        time_budget_s, eval_compositions)  # fmt: skip
    core, rule = _core(policy)
    return _run(key, library, core, rule, instrument, steps, n_seeds, jnp.asarray(time_budget_s), c)


@eqx.filter_jit
def _run(key, library, policy, rule, instrument, steps, n_seeds, budget, eval_c):
    k_obs, k_state = jax.random.split(key)
    obs = observe_library(k_obs, library, instrument)
    eval_f = _target(eval_c, library.peak_centres, library.peak_amplitudes,
                     library.config.peak_width)  # fmt: skip
    state = init_state(k_state, library, policy, instrument, obs, steps, n_seeds)
    budget = jnp.asarray(budget, obs.readings.dtype)
    return jax.lax.scan(
        lambda s, _: step(s, library, policy, instrument, obs, eval_c, eval_f, budget, rule),
        state, None, length=steps,
    )  # fmt: skip


def run_many(
    keys: PRNGKeyArray, libraries: ParticleLibrary, policy: LibraryPolicy,
    instrument: Instrument = Instrument(), steps: int = 150, *, n_seeds: int = 3,
    time_budget_s: float = math.inf, eval_compositions: Float[Array, "E q"] | None = None,
    batched_library: bool = True,
) -> tuple[LibraryState, dict[str, Array]]:  # fmt: skip
    """Many campaigns in one vectorised call (``vmap`` of :func:`run`).

    Args:
        keys: (C,) PRNG keys, one per campaign.
        libraries: a stack of C libraries (leading axis C), or one library shared by all
            campaigns with ``batched_library=False``.
        policy, instrument, steps, n_seeds, eval_compositions: as in :func:`run`.
        time_budget_s: one budget for all, or (C,) budgets, s.

    Returns:
        Final states and records with a leading campaign axis: records are (C, steps, ...).
    """
    n = _check_keys(keys)
    if batched_library:
        sizes = {x.shape[0] for x in jax.tree.leaves(libraries)}
        if sizes != {n}:
            raise ValueError(f"libraries must be a stack of {n} libraries (one per key; or pass "
                             f"batched_library=False to share one); got leading sizes {sizes}")  # fmt: skip
    one = jax.tree.map(lambda x: x[0], libraries) if batched_library else libraries
    steps, n_seeds, c = _check_run_args(one, policy, instrument, steps, n_seeds, time_budget_s,
                                        eval_compositions)  # fmt: skip
    budget = jnp.broadcast_to(jnp.asarray(time_budget_s, jnp.result_type(float)), (n,))
    core, rule = _core(policy)
    return _run_many(keys, libraries, core, rule, instrument, steps, n_seeds, budget, c,
                     batched_library)  # fmt: skip


@eqx.filter_jit
def _run_many(keys, libraries, policy, rule, instrument, steps, n_seeds, budget, eval_c, batched):
    fn = eqx.filter_vmap(
        lambda k, lib, b: _run(k, lib, policy, rule, instrument, steps, n_seeds, b, eval_c),
        in_axes=(0, 0 if batched else None, 0),
    )
    return fn(keys, libraries, budget)


def simulate(
    keys: PRNGKeyArray, config: LibraryConfig, policy: LibraryPolicy,
    instrument: Instrument = Instrument(), steps: int = 150, *, n_seeds: int = 3,
    time_budget_s: float = math.inf, eval_compositions: Float[Array, "E q"] | None = None,
) -> tuple[ParticleLibrary, LibraryState, dict[str, Array]]:  # fmt: skip
    """Campaigns on fresh libraries: campaign c draws its library from ``fold_in(keys[c], 0)``
    and runs with ``fold_in(keys[c], 1)``, so policies given the same keys meet the same
    libraries (paired comparisons). Returns (libraries, final states, records), all (C, ...)."""
    if not isinstance(config, LibraryConfig):
        raise TypeError(f"config must be a LibraryConfig; got {type(config)!r}")
    _check_keys(keys)
    libraries = jax.vmap(lambda k: make_library(jax.random.fold_in(k, 0), config))(keys)
    run_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    state, records = run_many(run_keys, libraries, policy, instrument, steps, n_seeds=n_seeds,
                              time_budget_s=time_budget_s, eval_compositions=eval_compositions)  # fmt: skip
    return libraries, state, records
