"""The STEMGym environment as pure functions: ``reset`` and ``step`` over pytrees.

An episode spends a dose budget imaging a world tile by tile::

    state, obs = reset(key, world, "census")
    state, obs, reward, terminated, truncated, info = step(key2, state, Action(5, 2.0), world)

Each step takes an :class:`Action` (tile index, dwell per probe position in µs, stop flag):

1. **Clip.** A tile outside [0, T − 1] is clipped into range; a dwell that is negative,
   NaN or above ``world.max_dwell_us`` is clipped into [0, max_dwell_us] (NaN → 0);
   ``info.action_clipped`` says so. (The Gymnasium wrapper rejects such actions instead.)
2. **Budget.** The tile receives D = dwell · I/e / step² e⁻/Å² (``world.dose_per_us`` per
   µs), which adds D/T to the field-mean dose spent. If that would pass
   ``world.budget_e_per_A2``, the dwell is cut so the budget is met exactly
   (``info.dwell_truncated``) and the episode terminates. The dose spent never exceeds the
   budget.
3. **Image.** The tile is recorded by :func:`stemjax.physics.acquire` from the specimen as
   it is now (damaged by earlier steps): HAADF signal, scan drift and line jitter within the
   frame, Poisson shot noise and detector read noise, in detected electrons. The commanded
   raster is displaced by the specimen drift accumulated since the episode began
   (``drift_A_per_s`` × elapsed time, in a direction drawn at reset, at most
   ``max_drift_A`` after drift correction).
4. **Damage.** Every site under the scanned raster receives D and loses atoms by knock-on
   (:func:`stemjax.physics.apply_damage`, thresholds scaled by the difficulty); sites that
   received no dose are never changed. Damage shows in later images of the tile.
5. **Reward.** The increase of the task score of the *oracle* analyst: the
   :func:`~stemjax.worlds.stemgym.tasks.ground_truth_report` of the tiles whose dose has
   reached ``world.resolve_dose_e_per_A2``, read from the damaged specimen's atom types (so
   beam-made vacancies count as census errors). The rewards of an episode sum to its final
   oracle score, in [0, 1]. An agent's own score is ``task_score(task, world, report,
   state.observed)`` for the report its analyst makes from ``state.frames``.

``stop`` ends the episode without imaging. After ``world.max_steps`` steps the episode is
truncated. Stepping a finished episode changes nothing and returns reward 0, so episodes of
different lengths run together under ``jax.vmap`` and ``jax.lax.scan``.

Both functions are jitted once per world shape (all worlds of one size share it) and vmap
over episodes: ``jax.vmap(step, in_axes=(0, 0, 0, None))(keys, states, actions, world)``.
The world is an argument rather than part of the state so that it is not copied per episode.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from stemjax.physics.acquisition import Acquisition, acquire
from stemjax.physics.damage import apply_damage
from stemjax.physics.dose import electrons_per_position, site_dose
from stemjax.physics.scan import ScanDistortion, ScanGrid
from stemjax.physics.specimen import Specimen
from stemjax.worlds.stemgym.tasks import ground_truth_report, task_index, task_scores
from stemjax.worlds.stemgym.worlds import World, check_world

__all__ = ["Action", "EnvState", "Observation", "StepInfo", "reset", "rollout", "step"]


class Action(eqx.Module):
    """What to do next.

    Attributes:
        tile: () int32, the tile to image, in [0, T − 1] (row-major, see ``World.field``).
        dwell_us: () dwell per probe position, µs, in [0, ``world.max_dwell_us``].
        stop: () bool, end the episode now (nothing is imaged).
    """

    tile: Int[Array, ""]
    dwell_us: Float[Array, ""]
    stop: Bool[Array, ""]

    def __init__(self, tile, dwell_us, stop=False):
        self.tile = jnp.asarray(tile, jnp.int32)
        self.dwell_us = jnp.asarray(dwell_us, jnp.result_type(float))
        self.stop = jnp.asarray(stop, bool)


class EnvState(eqx.Module):
    """Everything that changes during an episode (the world itself does not).

    Attributes:
        task: () int32 index into :data:`~stemjax.worlds.stemgym.tasks.TASKS`.
        counts, occupancies, atom_types: (n,) the specimen's sites as damaged so far.
        site_dose: (n,) dose each site has received, e⁻/Å².
        tile_dose: (T,) dose each tile has received, e⁻/Å².
        frames: (T, p, p) detected electrons summed over every frame of each tile.
        spent_e_per_A2: () dose spent, as a mean over the field, e⁻/Å².
        time_s: () time elapsed, s.
        drift_velocity: (2,) specimen drift (x, y), Å/s.
        steps: () int32 steps taken.
        score: () the oracle's task score so far.
        terminated: () bool, stopped or budget spent.
        truncated: () bool, ``world.max_steps`` reached.
    """

    task: Int[Array, ""]
    counts: Float[Array, " n"]
    occupancies: Float[Array, " n"]
    atom_types: Int[Array, " n"]
    site_dose: Float[Array, " n"]
    tile_dose: Float[Array, " T"]
    frames: Float[Array, "T p p"]
    spent_e_per_A2: Float[Array, ""]
    time_s: Float[Array, ""]
    drift_velocity: Float[Array, "2"]
    steps: Int[Array, ""]
    score: Float[Array, ""]
    terminated: Bool[Array, ""]
    truncated: Bool[Array, ""]

    @property
    def observed(self) -> Bool[Array, " T"]:
        """(T,) tiles that have received dose."""
        return self.tile_dose > 0

    @property
    def done(self) -> Bool[Array, ""]:
        """Whether the episode has ended."""
        return self.terminated | self.truncated


class Observation(eqx.Module):
    """What the agent sees after a reset or a step.

    Attributes:
        image: (p, p) the frame recorded this step, detected electrons (zeros if none).
        tile: () int32, the tile imaged this step, −1 if none (reset, stop, zero dose).
        dwell_us: () dwell actually used, µs.
        tile_dose: (T,) dose each tile has received, e⁻/Å².
        dose_fraction: () dose spent / budget, in [0, 1].
    """

    image: Float[Array, "p p"]
    tile: Int[Array, ""]
    dwell_us: Float[Array, ""]
    tile_dose: Float[Array, " T"]
    dose_fraction: Float[Array, ""]


class StepInfo(eqx.Module):
    """Diagnostics of a step.

    Attributes:
        tile: () int32, the tile after clipping.
        dwell_us: () dwell actually used, µs.
        dose_e_per_A2: () dose given to the tile this step, e⁻/Å².
        action_clipped: () bool, the tile or dwell was out of range and was clipped.
        dwell_truncated: () bool, the dwell was cut to meet the budget.
        displaced: () atoms knocked out this step.
        drift_A: (2,) offset of this frame's raster from the commanded tile, Å.
        score: () the oracle's task score after the step.
    """

    tile: Int[Array, ""]
    dwell_us: Float[Array, ""]
    dose_e_per_A2: Float[Array, ""]
    action_clipped: Bool[Array, ""]
    dwell_truncated: Bool[Array, ""]
    displaced: Float[Array, ""]
    drift_A: Float[Array, "2"]
    score: Float[Array, ""]


def reset(key: PRNGKeyArray, world: World, task="census") -> tuple[EnvState, Observation]:
    """Start an episode on ``world``.

    Args:
        key: PRNG key (draws the drift direction).
        world: the world (see :func:`~stemjax.worlds.stemgym.worlds.make_world`).
        task: a name in :data:`~stemjax.worlds.stemgym.tasks.TASKS` or its index (may be
            traced).

    Returns:
        The initial state (nothing spent, nothing seen) and observation (a blank frame).
    """
    check_world(world)
    return _reset(key, world, jnp.asarray(task_index(task), jnp.int32))


@eqx.filter_jit
def _reset(key, world: World, task):
    dtype = world.field.origin.dtype
    angle = 2.0 * jnp.pi * jax.random.uniform(key, (), dtype)
    velocity = world.drift_A_per_s * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
    spec = world.specimen
    t, (p, _) = world.n_tiles, world.tile_shape
    zero = jnp.zeros((), dtype)
    state = EnvState(
        task=task, counts=spec.counts, occupancies=spec.occupancies, atom_types=spec.atom_types,
        site_dose=jnp.zeros_like(spec.counts), tile_dose=jnp.zeros(t, dtype),
        frames=jnp.zeros((t, p, p), dtype), spent_e_per_A2=zero, time_s=zero,
        drift_velocity=velocity, steps=jnp.zeros((), jnp.int32), score=zero,
        terminated=jnp.zeros((), bool), truncated=jnp.zeros((), bool),
    )
    state = eqx.tree_at(lambda s: s.score, state, _oracle_score(world, state))
    obs = Observation(jnp.zeros((p, p), dtype), jnp.asarray(-1, jnp.int32), zero,
                      state.tile_dose, zero)  # fmt: skip
    return state, obs


def step(
    key: PRNGKeyArray, state: EnvState, action: Action, world: World
) -> tuple[EnvState, Observation, Float[Array, ""], Bool[Array, ""], Bool[Array, ""], StepInfo]:
    """Take one action.

    Args:
        key: PRNG key (split for the frame's noise and jitter and for the damage draw).
        state: the episode so far.
        action: tile, dwell (µs) and stop flag; out-of-range values are clipped (flagged in
            ``info.action_clipped``).
        world: the world the episode was reset on.

    Returns:
        ``(state, observation, reward, terminated, truncated, info)``.
    """
    check_world(world)
    if not isinstance(state, EnvState) or not isinstance(action, Action):
        raise ValueError("state must be an EnvState (from reset) and action an Action; got "
                         f"{type(state).__name__} and {type(action).__name__}")  # fmt: skip
    n = world.specimen.capacity
    if state.tile_dose.shape[-1] != world.n_tiles or state.counts.shape[-1] != n:
        raise ValueError("state does not belong to this world: it has "
                         f"{state.tile_dose.shape[-1]} tiles and {state.counts.shape[-1]} sites, "
                         f"the world {world.n_tiles} and {n}")  # fmt: skip
    return _step(key, state, action, world)


def _tile_specimen(world: World, state: EnvState, indices: Array) -> Specimen:
    """The sites listed in ``indices`` (padding = n) with their current damage state."""
    spec = world.specimen
    ok = indices < spec.capacity
    safe = jnp.where(ok, indices, 0)
    return Specimen(
        positions=spec.positions[safe], atomic_numbers=spec.atomic_numbers[safe],
        counts=state.counts[safe], occupancies=state.occupancies[safe],
        debye_waller=spec.debye_waller[safe],
        displacement_threshold_ev=spec.displacement_threshold_ev[safe],
        atom_types=state.atom_types[safe], phases=spec.phases[safe],
        present=spec.present[safe] & ok, cell=spec.cell, domains=spec.domains,
    )


def _oracle_score(world: World, state: EnvState) -> Array:
    resolved = state.tile_dose >= world.resolve_dose_e_per_A2
    report = ground_truth_report(world, resolved, state.atom_types)
    return task_scores(world, report, resolved)[state.task]


@eqx.filter_jit
def _step(key, state: EnvState, action: Action, world: World):
    k_image, k_damage = jax.random.split(key)
    dtype = state.tile_dose.dtype
    t, (p, _) = world.n_tiles, world.tile_shape
    active = ~state.done

    # 1. clip the action
    tile = jnp.clip(action.tile, 0, t - 1)
    asked = jnp.asarray(action.dwell_us, dtype)
    dwell = jnp.clip(jnp.where(jnp.isfinite(asked), asked, 0.0), 0.0, world.max_dwell_us)
    clipped = (tile != action.tile) | (dwell != asked)
    imaging = active & ~action.stop

    # 2. dose against the budget (field-mean dose: a tile dose D adds D / T)
    rate = world.dose_per_us
    requested = jnp.where(imaging, dwell * rate, 0.0)
    candidate = state.spent_e_per_A2 + requested / t
    over = candidate > world.budget_e_per_A2
    spent = jnp.where(over, world.budget_e_per_A2, candidate)
    dose = jnp.maximum(jnp.where(over, (world.budget_e_per_A2 - state.spent_e_per_A2) * t,
                                 requested), 0.0)  # fmt: skip
    dwell_used = dose / rate
    imaged = dose > 0

    # 3. image the tile, displaced by the accumulated drift
    travel = state.drift_velocity * state.time_s
    length = jnp.sqrt(jnp.sum(travel**2))
    offset = travel * jnp.minimum(1.0, world.max_drift_A / jnp.maximum(length, 1e-30))
    grid = ScanGrid(world.tile_shape, world.pixel_A, world.tile_origins()[tile] + offset)
    indices = world.tile_sites[tile]
    sub = _tile_specimen(world, state, indices)
    settings = Acquisition(
        current_pA=world.current_pA, dwell_us=dwell_used,
        distortion=ScanDistortion(state.drift_velocity, world.line_jitter_A, world.flyback_us),
        read_noise=world.read_noise, noise="poisson",
    )
    frame = acquire(k_image, world.imaging, sub, grid, settings).image
    image = jnp.where(imaged, frame, 0.0)

    # 4. knock-on damage where the dose went
    given = site_dose(sub, grid, electrons_per_position(world.current_pA, dwell_used))
    damaged, displaced = apply_damage(k_damage, sub, given, world.imaging.probe.energy_kev)
    put = lambda a, v: a.at[indices].set(v, mode="drop")  # noqa: E731

    elapsed = jnp.where(imaging, world.settle_s, 0.0) + jnp.where(
        imaged, p * (p * dwell_used + world.flyback_us) * 1e-6, 0.0
    )
    steps = state.steps + active.astype(jnp.int32)
    terminated = state.terminated | (active & (action.stop | (spent >= world.budget_e_per_A2)))
    truncated = state.truncated | (active & ~terminated & (steps >= world.max_steps))
    new = EnvState(
        task=state.task,
        counts=put(state.counts, damaged.counts),
        occupancies=put(state.occupancies, damaged.occupancies),
        atom_types=put(state.atom_types, damaged.atom_types),
        site_dose=state.site_dose.at[indices].add(given, mode="drop"),
        tile_dose=state.tile_dose.at[tile].add(dose),
        frames=state.frames.at[tile].add(image),
        spent_e_per_A2=spent,
        time_s=state.time_s + elapsed,
        drift_velocity=state.drift_velocity,
        steps=steps,
        score=state.score,
        terminated=terminated,
        truncated=truncated,
    )
    score = jnp.where(active, _oracle_score(world, new), state.score)
    new = eqx.tree_at(lambda s: s.score, new, score)
    reward = score - state.score
    obs = Observation(
        image=image, tile=jnp.where(imaged, tile, -1).astype(jnp.int32), dwell_us=dwell_used,
        tile_dose=new.tile_dose, dose_fraction=spent / world.budget_e_per_A2,
    )
    info = StepInfo(
        tile=tile.astype(jnp.int32), dwell_us=dwell_used, dose_e_per_A2=dose,
        action_clipped=active & clipped, dwell_truncated=active & imaging & over,
        displaced=jnp.sum(displaced), drift_A=offset, score=score,
    )
    return new, obs, reward, terminated, truncated, info


def rollout(key: PRNGKeyArray, world: World, task, actions: Action):
    """Run one episode with a fixed sequence of actions, under ``jax.lax.scan``.

    Args:
        key: PRNG key (split into the reset key and one key per step).
        world: the world.
        task: a name in :data:`~stemjax.worlds.stemgym.tasks.TASKS` or its index.
        actions: an :class:`Action` whose fields have a leading axis of S steps.

    Returns:
        ``(final_state, (observations, rewards, terminated, truncated, infos))``, each of the
        latter with a leading axis of S. Steps after the episode ended are no-ops.
    """
    check_world(world)
    k_reset, k_steps = jax.random.split(key)
    state, _ = reset(k_reset, world, task)
    keys = jax.random.split(k_steps, jnp.shape(actions.tile)[0])

    def body(state, inputs):
        k, action = inputs
        state, obs, reward, terminated, truncated, info = _step(k, state, action, world)
        return state, (obs, reward, terminated, truncated, info)

    return jax.lax.scan(body, state, (keys, actions))
