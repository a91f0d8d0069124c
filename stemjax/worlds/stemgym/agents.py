"""STEMGym agents: navigators, the paper's five-mode planner, and scored episodes.

An **agent** is an analyst (what the frames show) plus a navigator (where to look next)::

    agent = Agent("gp-ucb+cnn", GPUCB(beta=2.0), analyst)
    episodes = run_episodes(keys, agent, world)          # (E,) episodes under vmap
    episodes.dec_auc                                       # (E, 4) DEC-AUC per task

- An **analyst** is a pure function ``analyse(state: EnvState, world: World) -> Report`` that
  vmaps over episodes (``jax.vmap(analyse, in_axes=(0, None))``): the peak finder and the CNN
  of :mod:`stemjax.worlds.stemgym.analysts`, or the stand-ins here (:func:`oracle_analyst`,
  the perfect analyst of the tiles seen; :func:`empty_analyst`, which reports nothing).
- An analyst that works tile by tile may say so by being a :class:`TileAnalyst` (or any
  object with its ``tile_features`` and ``assemble`` methods): an episode then analyses only
  the tile imaged at each step and keeps the other tiles' features, so a CNN analyst costs one
  tile per step instead of T, with the same reports.
- A **navigator** is a pure function of (key, its own carry, the environment state, the world,
  the analyst's current report) that returns an :class:`~stemjax.worlds.stemgym.env.Action`
  and the next carry: :class:`RandomNavigator` (a uniform tile each step),
  :class:`RasterNavigator` (tiles in row-major order, every tile once before any repeats),
  :class:`GPUCB` (an exact GP over the tile centres whose targets are the defects the
  analyst found per tile, maximised by UCB at a fixed β) and :class:`PlannerUCB` (the same GP
  with β set by the paper's five-mode :class:`Planner`).

Every navigator spends a fixed dwell per step, by default the one that spends the budget in
one full raster of the field (``budget / dose_per_us`` µs, :func:`budget_dwell_us`), so an
episode is ``T`` steps (T tiles) of one ``lax.scan``.

**Scoring.** After reset and after every step (every ``score_every``-th step, if asked) the
analyst's report is scored on all four tasks, ``task_scores(world, report, state.observed)``,
against the dose spent as a fraction of the budget; the episode's dose-efficiency curve starts
at (0, score of the report of nothing seen = 0) and its DEC-AUC is
:func:`stemjax.metrics.dec_auc` (trapezoid rule on [0, 1], the last score held to the full
budget). No built-in navigator reads the task, so one episode's
trajectory is the same whichever task it is scored on: scoring one rollout on the four tasks
equals four rollouts with the same keys, at a quarter of the cost.

**Paired keys.** An episode key is split into the reset key, the environment's step keys and
the navigator's keys, so two agents run with the same episode key see the same drift and the
same noise draws at each step: their DEC-AUCs are paired samples.

Lengths in Å, dwell in µs, dose in e⁻/Å², dose fractions and scores dimensionless in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from stemjax.acquisition import ucb
from stemjax.metrics import dec_auc
from stemjax.models import Kernel
from stemjax.posterior import Posterior
from stemjax.worlds.stemgym.env import Action, EnvState, reset, step
from stemjax.worlds.stemgym.tasks import (
    Report,
    empty_report,
    ground_truth_report,
    task_scores,
)
from stemjax.worlds.stemgym.worlds import World, check_world

__all__ = [
    "MODES",
    "Agent",
    "Analyst",
    "Episode",
    "GPUCB",
    "GPState",
    "Navigator",
    "Planner",
    "PlannerUCB",
    "RandomNavigator",
    "RasterNavigator",
    "TileAnalyst",
    "budget_dwell_us",
    "defects_found",
    "empty_analyst",
    "oracle_analyst",
    "run_episode",
    "run_episodes",
    "run_grid",
    "stack_worlds",
    "tile_centres",
]

Analyst = Callable[[EnvState, World], Report]
"""``analyse(state, world) -> Report``: pure, jit-able, vmaps over episodes."""

MODES = ("survey", "investigate", "characterise", "census", "terminate")
"""The planner's modes, in order (``Episode.modes`` holds their indices; −1: no planner)."""


# --------------------------------------------------------------------------------------------
# stand-in analysts


def oracle_analyst(state: EnvState, world: World) -> Report:
    """The perfect analyst of the tiles seen so far (reads the ground truth): an upper bound.

    ``ground_truth_report(world, state.observed)``: exact counts, phases and particles of every
    tile that has received dose, however little.
    """
    return ground_truth_report(world, state.observed)


def empty_analyst(state: EnvState, world: World) -> Report:
    """An analyst that reports nothing (every task scores 0): a lower bound."""
    del state
    return empty_report(world)


class TileAnalyst(eqx.Module):
    """An analyst that analyses every tile on its own and then assembles the report.

    ``analyse(state, world) = assemble(tile_features(state.frames, state.tile_dose,
    arange(T), world), state, world)``. Episodes (:func:`run_episode`) keep the (T, ...)
    features of the tiles seen and recompute only those of the tile imaged at each step, so
    the cost per step is one tile's features plus the assembly, and the reports are those of
    the full analysis. Features of tiles never imaged are zeros: ``assemble`` must read only
    the features of observed tiles (``state.observed``).

    Any object with these two methods (and ``__call__``) is treated the same way.

    Attributes:
        tile_features: ``(frames (k, p, p), tile_dose (k,), tiles (k,) int32, world) ->``
            a pytree of arrays with leading axis k (detected electrons, e⁻/Å², tile indices).
        assemble: ``(features (T, ...), state, world) -> Report``.
    """

    tile_features: Callable
    assemble: Callable

    def __call__(self, state: EnvState, world: World) -> Report:
        tiles = jnp.arange(world.n_tiles, dtype=jnp.int32)
        features = self.tile_features(state.frames, state.tile_dose, tiles, world)
        return self.assemble(features, state, world)


def _is_tile_analyst(analyst) -> bool:
    return callable(getattr(analyst, "tile_features", None)) and callable(
        getattr(analyst, "assemble", None)
    )


# --------------------------------------------------------------------------------------------
# helpers


def budget_dwell_us(world: World) -> Float[Array, ""]:
    """Dwell per probe position that spends the dose budget in one full raster of the field, µs.

    A tile imaged at dwell τ receives τ · ``dose_per_us`` e⁻/Å² and adds 1/T of it to the
    field-mean dose, so T tiles at τ = budget / ``dose_per_us`` spend the budget exactly
    (3.77 µs for the default 6000 e⁻/Å² at 20 pA). Clipped to ``max_dwell_us``.
    """
    return jnp.minimum(world.budget_e_per_A2 / world.dose_per_us, world.max_dwell_us)


def tile_centres(world: World) -> Float[Array, "T 2"]:
    """(T, 2) (column, row) of each tile, in tile units (tile t = row · tiles + column)."""
    index = jnp.arange(world.n_tiles)
    dtype = world.field.origin.dtype
    return jnp.stack([index % world.tiles, index // world.tiles], axis=-1).astype(dtype)


def defects_found(report: Report, observed: Bool[Array, " T"]) -> Float[Array, " T"]:
    """(T,) vacancies + substitutions the report found in each tile it analysed and that was
    observed (0 elsewhere): the interest the GP navigators model."""
    credited = jnp.asarray(report.analysed, bool) & jnp.asarray(observed, bool)
    found = jnp.maximum(jnp.sum(report.defect_counts, axis=-1), 0.0)
    return jnp.where(credited, found, 0.0)


def _dwell(dwell_us, world: World) -> Array:
    dtype = world.field.origin.dtype
    if dwell_us is None:
        return budget_dwell_us(world).astype(dtype)
    return jnp.asarray(dwell_us, dtype)


def _check_dwell(dwell_us) -> None:
    if dwell_us is None:
        return
    if isinstance(dwell_us, bool) or not isinstance(dwell_us, (int, float, np.floating)) or not (
        np.isfinite(dwell_us) and dwell_us > 0
    ):
        raise ValueError(f"dwell_us must be None (spend the budget in one raster) or a number "
                         f"> 0 µs; got {dwell_us!r}")  # fmt: skip


def _positive(name: str, value, unit: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise ValueError(f"{name} must be a number > 0{unit}; got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be > 0{unit} and finite; got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# navigators


class Navigator(eqx.Module):
    """Base class: chooses the next :class:`Action` from the episode so far.

    Subclasses implement :meth:`choose` (and :meth:`init` / :meth:`mode` when they keep a
    carry). Every action images (``stop`` False) at the navigator's fixed dwell.

    Attributes:
        dwell_us: dwell per probe position, µs; None for :func:`budget_dwell_us`.
    """

    dwell_us: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        _check_dwell(self.dwell_us)

    def init(self, world: World):
        """The carry at the start of an episode (default: none, an empty tuple)."""
        del world
        return ()

    def mode(self, carry) -> Int[Array, ""]:
        """() int32 planner mode held in ``carry`` (index into :data:`MODES`); −1 for none."""
        del carry
        return jnp.asarray(-1, jnp.int32)

    def choose(self, key: PRNGKeyArray, carry, state: EnvState, world: World,
               report: Report) -> tuple[Int[Array, ""], object]:  # fmt: skip
        """The next tile () int32 and the next carry."""
        raise NotImplementedError

    def __call__(self, key: PRNGKeyArray, carry, state: EnvState, world: World,
                 report: Report) -> tuple[Action, object]:  # fmt: skip
        """The next action and carry.

        Args:
            key: PRNG key of this step.
            carry: from :meth:`init` or the previous call.
            state: the episode so far.
            world: the world.
            report: the analyst's report of ``state``.

        Returns:
            ``(Action(tile, dwell_us, stop=False), carry)``.
        """
        tile, carry = self.choose(key, carry, state, world, report)
        return Action(tile, _dwell(self.dwell_us, world), False), carry


class RandomNavigator(Navigator):
    """A tile drawn uniformly from all T tiles at each step (with replacement)."""

    def choose(self, key, carry, state, world, report):
        return jax.random.randint(key, (), 0, world.n_tiles, jnp.int32), carry


class RasterNavigator(Navigator):
    """Tiles in row-major order, tile = steps taken mod T: every tile once before any repeats."""

    def choose(self, key, carry, state, world, report):
        return (state.steps % world.n_tiles).astype(jnp.int32), carry


class GPState(eqx.Module):
    """The GP-UCB navigator's carry: the GP posterior covariance over the tiles.

    Attributes:
        covariance: (T, T) posterior covariance of the latent interest at the tile centres
            given the tiles in ``included`` (the prior kernel matrix before any).
        included: (T,) bool, tiles whose observation the covariance holds.
    """

    covariance: Float[Array, "T T"]
    included: Bool[Array, " T"]


class GPUCB(Navigator):
    """GP-UCB over the tiles: the tile maximising μ + √β σ of an exact GP of the analyst's
    defects found per tile.

    The GP is the masked exact GP of :mod:`stemjax.models` (kernel :class:`~stemjax.models.
    Kernel` over the T tile centres in tile units, fixed hyperparameters) with targets y =
    defects found per observed tile (:func:`defects_found`) divided by max(1, the largest of
    them), so y ∈ [0, 1]; constant mean c = the mean of those y (0 before any). Tiles observed
    but not yet in the report (imaged since it was made, when reports are refreshed every few
    steps) enter at y = c ("constant liar"), so the GP does not send the beam back to them.
    The score is :func:`stemjax.acquisition.ucb` at every tile, observed ones included (a
    small β re-images the richest tiles); ties (e.g. the first step) are broken by a uniform
    draw of 10⁻⁵.

    Because the candidates are the training inputs (the tile centres) and the noise is
    homoscedastic, the posterior is carried from step to step rather than refactorised: the
    covariance Σ gains one rank-one update per newly observed tile t,
    Σ ← Σ − Σ[:, t] Σ[t, :] / (Σ[t, t] + σ²), and the mean is μ = c + Σ[:, S] (y_S − c) / σ²
    over the observed tiles S (the posterior-precision form of R&W eq. 2.25; tests check it
    against :func:`stemjax.models.condition`). This needs only matrix products: jaxlib 0.10's
    batched triangular solves on CPU take 0.3 ms to 2 s per call for 150 episodes of 64
    tiles, erratically.

    Attributes:
        beta: exploration weight β ≥ 0 of μ + √β σ.
        lengthscale_tiles: kernel lengthscale, tiles (> 0).
        signal_variance: kernel variance s², in units of y² (> 0).
        noise_variance: observation noise σ², in units of y² (> 0).
        kind: kernel family (see :data:`stemjax.models.KINDS`).
    """

    beta: float = eqx.field(static=True, default=2.0)
    lengthscale_tiles: float = eqx.field(static=True, default=1.5)
    signal_variance: float = eqx.field(static=True, default=1.0)
    noise_variance: float = eqx.field(static=True, default=0.01)
    kind: str = eqx.field(static=True, default="matern52")

    def __check_init__(self):
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not (
            np.isfinite(self.beta) and self.beta >= 0
        ):
            raise ValueError(f"beta must be a number >= 0; got {self.beta!r}")
        _positive("lengthscale_tiles", self.lengthscale_tiles, " tiles")
        _positive("signal_variance", self.signal_variance)
        _positive("noise_variance", self.noise_variance)
        Kernel(self.kind)  # checks the name

    def kernel(self, dtype=None) -> Kernel:
        """The GP's kernel."""
        return Kernel(self.kind, self.lengthscale_tiles, self.signal_variance, dtype=dtype)

    def init(self, world: World) -> GPState:
        """The prior: covariance k(X, X) over the tile centres X, nothing included."""
        centres = tile_centres(world)
        prior = self.kernel(centres.dtype).gram(centres)
        return GPState(prior, jnp.zeros(world.n_tiles, bool))

    def include(self, carry: GPState, observed: Bool[Array, " T"]) -> GPState:
        """``carry`` with every observed tile included (one rank-one update per new tile)."""
        noise = jnp.asarray(self.noise_variance, carry.covariance.dtype)

        def add(c: GPState) -> GPState:
            new = observed & ~c.included
            t = jnp.argmax(new)
            column = c.covariance[:, t]
            covariance = c.covariance - jnp.outer(column, column) / (column[t] + noise)
            covariance = 0.5 * (covariance + covariance.T)
            return GPState(covariance, c.included.at[t].set(True))

        return jax.lax.while_loop(lambda c: jnp.any(observed & ~c.included), add, carry)

    def posterior(self, carry: GPState, state: EnvState, report: Report) -> Posterior:
        """Mean and variance (T,) of the scaled interest at every tile, given ``carry`` with
        the observed tiles included (:meth:`include`)."""
        observed = carry.included
        credited = jnp.asarray(report.analysed, bool) & observed
        found = defects_found(report, observed)
        y = found / jnp.maximum(1.0, jnp.max(found))
        c = jnp.sum(jnp.where(credited, y, 0.0)) / jnp.maximum(jnp.sum(credited), 1)
        residual = jnp.where(credited, y - c, 0.0)  # liars sit at c
        cov = carry.covariance
        mean = c + cov @ residual / jnp.asarray(self.noise_variance, cov.dtype)
        return Posterior(mean=mean, variance=jnp.maximum(jnp.diagonal(cov), 0.0))

    def ucb_tile(self, key: PRNGKeyArray, beta, carry: GPState, state: EnvState,
                 report: Report) -> Int[Array, ""]:  # fmt: skip
        """The tile maximising μ + √β σ (β may be traced)."""
        post = self.posterior(carry, state, report)
        scores = ucb(beta)(post)
        jitter = 1e-5 * jax.random.uniform(key, scores.shape, scores.dtype)
        return jnp.argmax(scores + jitter).astype(jnp.int32)

    def choose(self, key, carry, state, world, report):
        carry = self.include(carry, state.observed)
        return self.ucb_tile(key, self.beta, carry, state, report), carry


class Planner(eqx.Module):
    """The paper's five-mode state machine over GP-UCB's β (STEMGym, figure 1b).

    Modes and β: SURVEY 3.0, INVESTIGATE 2.0, CHARACTERISE 0.5, CENSUS 1.0, TERMINATE 0.0.
    At most one forward transition per step, each when its signal reaches its threshold:

    - SURVEY → INVESTIGATE when coverage (fraction of tiles observed) ≥ 15 %;
    - INVESTIGATE → CHARACTERISE when the analyst has found ≥ 2 defects (over observed tiles);
    - CHARACTERISE → CENSUS when coverage ≥ 50 %;
    - any mode → TERMINATE when the budget left (fraction) ≤ 20 %, which overrides the above.

    TERMINATE keeps imaging at β = 0 (pure exploitation of the GP mean) until the budget is
    spent; the dose-efficiency curve would hold its last score anyway.

    Attributes:
        betas: (5,) β of each mode, in the order of :data:`MODES`.
        survey_coverage: coverage that ends SURVEY, fraction in [0, 1].
        defects_to_characterise: defects found that end INVESTIGATE.
        census_coverage: coverage that ends CHARACTERISE, fraction in [0, 1].
        terminate_budget_left: budget fraction left at or below which the planner terminates.
    """

    betas: tuple[float, ...] = eqx.field(static=True, default=(3.0, 2.0, 0.5, 1.0, 0.0))
    survey_coverage: float = eqx.field(static=True, default=0.15)
    defects_to_characterise: float = eqx.field(static=True, default=2.0)
    census_coverage: float = eqx.field(static=True, default=0.5)
    terminate_budget_left: float = eqx.field(static=True, default=0.2)

    def __check_init__(self):
        betas = np.asarray(self.betas, float)
        if betas.shape != (len(MODES),) or not np.all(np.isfinite(betas) & (betas >= 0)):
            raise ValueError(f"betas must be {len(MODES)} numbers >= 0 (one per mode "
                             f"{MODES}); got {self.betas!r}")  # fmt: skip
        for name in ("survey_coverage", "census_coverage", "terminate_budget_left"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                0.0 <= value <= 1.0
            ):
                raise ValueError(f"{name} must be a fraction in [0, 1]; got {value!r}")
        value = self.defects_to_characterise
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            np.isfinite(value) and value >= 0
        ):
            raise ValueError(f"defects_to_characterise must be a number >= 0; got {value!r}")

    def transition(self, mode, coverage, defects, budget_left) -> Int[Array, ""]:
        """The mode after one step of the machine.

        Args:
            mode: () int32 current mode (index into :data:`MODES`).
            coverage: () fraction of tiles observed, in [0, 1].
            defects: () defects the analyst has found.
            budget_left: () 1 − dose spent / budget, in [0, 1].

        Returns:
            () int32 next mode.
        """
        mode = jnp.asarray(mode, jnp.int32)
        forward = jnp.select(
            [(mode == 0) & (coverage >= self.survey_coverage),
             (mode == 1) & (defects >= self.defects_to_characterise),
             (mode == 2) & (coverage >= self.census_coverage)],
            [1, 2, 3], mode,
        )  # fmt: skip
        return jnp.where(budget_left <= self.terminate_budget_left, 4, forward).astype(jnp.int32)

    def beta(self, mode) -> Float[Array, ""]:
        """() β of ``mode``."""
        return jnp.asarray(self.betas)[jnp.asarray(mode, jnp.int32)]


class PlannerUCB(GPUCB):
    """GP-UCB with β chosen per step by the :class:`Planner` (the paper's STEMAgent).

    Before each action the planner advances its mode from the coverage (``state.observed``),
    the defects the analyst has found (:func:`defects_found`, summed) and the budget left, and
    the GP-UCB tile is chosen at that mode's β. The carry is (mode, :class:`GPState`);
    episodes start in SURVEY. ``beta`` (GP-UCB's fixed β) is unused.

    Attributes:
        planner: the state machine.
    """

    planner: Planner = Planner()

    def init(self, world):
        return (jnp.asarray(0, jnp.int32), super().init(world))

    def mode(self, carry):
        return jnp.asarray(carry[0], jnp.int32)

    def choose(self, key, carry, state, world, report):
        mode, gp = carry
        coverage = jnp.mean(state.observed.astype(state.tile_dose.dtype))
        found = jnp.sum(defects_found(report, state.observed))
        left = 1.0 - state.spent_e_per_A2 / world.budget_e_per_A2
        mode = self.planner.transition(mode, coverage, found, left)
        gp = self.include(gp, state.observed)
        return self.ucb_tile(key, self.planner.beta(mode), gp, state, report), (mode, gp)


# --------------------------------------------------------------------------------------------
# agents and episodes


class Agent(eqx.Module):
    """A navigator and an analyst, with a name for tables (``"raster+cnn"``).

    Attributes:
        name: label (static).
        navigator: a :class:`Navigator`.
        analyst: ``analyse(state, world) -> Report`` (a function or a callable equinox module,
            whose arrays are traced).
    """

    name: str = eqx.field(static=True)
    navigator: Navigator
    analyst: Callable

    def __check_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string; got {self.name!r}")
        if not isinstance(self.navigator, Navigator):
            raise ValueError(f"navigator must be a stemjax.worlds.stemgym.agents.Navigator; got "
                             f"{type(self.navigator).__name__}")  # fmt: skip
        if not callable(self.analyst):
            raise ValueError(f"analyst must be callable as analyse(state, world) -> Report; got "
                             f"{type(self.analyst).__name__}")  # fmt: skip


class Episode(eqx.Module):
    """One scored episode (leading batch axes added by :func:`run_episodes` / :func:`run_grid`).

    S steps, scored every k steps: C = S/k + 1 points of the curve, index 0 the reset (dose
    0), index j ≥ 1 after step j·k (C = S + 1 for k = 1).

    Attributes:
        dose_fraction: (C,) dose spent / budget, in [0, 1].
        scores: (C, 4) task scores of the analyst's report (order of
            :data:`~stemjax.worlds.stemgym.tasks.TASKS`), in [0, 1].
        valid: (C,) bool, points of the curve (False: after the episode ended).
        dec_auc: (4,) DEC-AUC per task, in [0, 1].
        tiles: (S,) int32 tile imaged at each step (−1: nothing imaged).
        dwell_us: (S,) dwell actually used at each step, µs.
        modes: (S,) int32 planner mode in force at each step (−1: no planner).
        coverage: () fraction of tiles observed at the end.
    """

    dose_fraction: Float[Array, " S1"]
    scores: Float[Array, "S1 4"]
    valid: Bool[Array, " S1"]
    dec_auc: Float[Array, "4"]
    tiles: Int[Array, " S"]
    dwell_us: Float[Array, " S"]
    modes: Int[Array, " S"]
    coverage: Float[Array, ""]


def _check_agent_world(agent, world) -> None:
    if not isinstance(agent, Agent):
        raise ValueError(f"agent must be a stemjax.worlds.stemgym.agents.Agent; got "
                         f"{type(agent).__name__}")  # fmt: skip
    check_world(world)


def _steps(steps, world: World, every) -> tuple[int, int]:
    if steps is None:
        steps = world.n_tiles
    elif isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be None (one step per tile, T = {world.n_tiles}) or an "
                         f"integer >= 1; got {steps!r}")  # fmt: skip
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1 or (
        steps % every
    ):
        raise ValueError(f"score_every must be an integer >= 1 that divides steps = {steps}; "
                         f"got {every!r}")  # fmt: skip
    return int(steps), int(every)


def _episode(key: PRNGKeyArray, agent: Agent, world: World, steps: int,
             every: int = 1) -> Episode:  # fmt: skip
    k_reset, k_env, k_nav = jax.random.split(key, 3)
    state, _ = reset(k_reset, world, 0)  # the task only sets the oracle reward: unused here
    carry = agent.navigator.init(world)
    analyst = agent.analyst
    incremental = _is_tile_analyst(analyst)
    if incremental:  # zero features, analysed one tile at a time as tiles are imaged
        one = jax.eval_shape(lambda s: analyst.tile_features(
            s.frames[:1], s.tile_dose[:1], jnp.zeros((1,), jnp.int32), world), state)
        cache = jax.tree.map(lambda a: jnp.zeros((world.n_tiles,) + a.shape[1:], a.dtype), one)
        report = analyst.assemble(cache, state, world)
    else:
        cache = ()
        report = analyst(state, world)
    first = task_scores(world, report, state.observed)
    n_checks = steps // every
    keys = (jax.random.split(k_nav, steps).reshape(n_checks, every),
            jax.random.split(k_env, steps).reshape(n_checks, every))  # fmt: skip

    def update(cache, state, tile):  # the features of the tile just imaged
        if not incremental:
            return cache
        t = jnp.maximum(tile, 0)
        new = analyst.tile_features(state.frames[t][None], state.tile_dose[t][None], t[None],
                                    world)  # fmt: skip
        return jax.tree.map(lambda c, v: jnp.where(tile >= 0, c.at[t].set(v[0]), c), cache, new)

    def checkpoint(c, ks):
        state, carry, cache, report = c

        def one_step(c, k):
            state, carry, cache = c
            k_n, k_e = k
            active = ~state.done
            action, carry = agent.navigator(k_n, carry, state, world, report)
            state, obs, _, _, _, _ = step(k_e, state, action, world)
            cache = update(cache, state, obs.tile)
            out = (active, obs.tile, obs.dwell_us, agent.navigator.mode(carry))
            return (state, carry, cache), out

        (state, carry, cache), per_step = jax.lax.scan(one_step, (state, carry, cache), ks)
        report = analyst.assemble(cache, state, world) if incremental else analyst(state, world)
        scores = task_scores(world, report, state.observed)
        fraction = jnp.clip(state.spent_e_per_A2 / world.budget_e_per_A2, 0.0, 1.0)
        return (state, carry, cache, report), (fraction, scores, per_step)

    (state, _, _, _), (fraction, scores, per_step) = jax.lax.scan(
        checkpoint, (state, carry, cache, report), keys
    )
    active, tiles, dwell, modes = (x.reshape(steps) for x in per_step)
    zero = jnp.zeros((1,), fraction.dtype)
    dose = jnp.concatenate([zero, fraction])
    scores = jnp.concatenate([first[None].astype(scores.dtype), scores])
    valid = jnp.concatenate([jnp.ones((1,), bool), active.reshape(n_checks, every)[:, 0]])
    auc = jax.vmap(dec_auc, in_axes=(None, 1, None))(dose, scores, valid)
    coverage = jnp.mean(state.observed.astype(dose.dtype))
    return Episode(dose, scores, valid, auc, tiles, dwell, modes, coverage)


@eqx.filter_jit
def _one(key, agent, world, steps, every):
    return _episode(key, agent, world, steps, every)


@eqx.filter_jit
def _many(keys, agent, world, steps, every):
    return jax.vmap(_episode, in_axes=(0, None, None, None, None))(keys, agent, world, steps,
                                                                   every)  # fmt: skip


@eqx.filter_jit
def _grid(keys, agent, worlds, steps, every):
    per_world = jax.vmap(_episode, in_axes=(0, None, None, None, None))
    return jax.vmap(per_world, in_axes=(0, None, 0, None, None))(keys, agent, worlds, steps,
                                                                 every)  # fmt: skip


def run_episode(key: PRNGKeyArray, agent: Agent, world: World, steps: int | None = None, *,
                score_every: int = 1) -> Episode:  # fmt: skip
    """Run and score one episode of ``agent`` on ``world`` (``lax.scan``; jitted).

    Args:
        key: PRNG key of the episode (split into reset, environment and navigator keys, so
            agents run on the same key are paired).
        agent: the agent.
        world: the world.
        steps: number of steps S (static); None for one per tile (T), which with the default
            dwell spends the budget exactly.
        score_every: k; the report is made and scored after every k-th step (static; k
            divides S). The navigator acts on the latest report (up to k − 1 steps old; a
            :class:`TileAnalyst` still analyses every tile as it is imaged), and the
            dose-efficiency curve has S/k + 1 points, joined by straight lines. k = 1
            (default) scores every step.

    Returns:
        The :class:`Episode`.
    """
    _check_agent_world(agent, world)
    return _one(key, agent, world, *_steps(steps, world, score_every))


def run_episodes(keys: PRNGKeyArray, agent: Agent, world: World, steps: int | None = None, *,
                 score_every: int = 1) -> Episode:  # fmt: skip
    """E episodes of ``agent`` on one world under ``jax.vmap`` (keys (E,)): fields gain (E,).
    Arguments as :func:`run_episode`."""
    _check_agent_world(agent, world)
    if jnp.ndim(keys) != 1:
        raise ValueError(f"keys must have shape (E,), one key per episode; got "
                         f"{jnp.shape(keys)}")  # fmt: skip
    return _many(keys, agent, world, *_steps(steps, world, score_every))


def run_grid(keys: PRNGKeyArray, agent: Agent, worlds: World, steps: int | None = None, *,
             score_every: int = 1) -> Episode:  # fmt: skip
    """Episodes of ``agent`` on W stacked worlds (:func:`stack_worlds`), keys (W, E): fields
    gain (W, E). One compiled call; the worlds are not copied per episode. Arguments as
    :func:`run_episode`."""
    _check_agent_world(agent, worlds)
    w = worlds.material.shape
    if len(w) != 1 or jnp.ndim(keys) != 2 or jnp.shape(keys)[:1] != w:
        raise ValueError(f"worlds must be stacked along one axis (stack_worlds) and keys have "
                         f"shape (W, E) with W = {w[0] if w else 'none'}; got worlds "
                         f"{w} and keys {jnp.shape(keys)}")  # fmt: skip
    return _grid(keys, agent, worlds, *_steps(steps, worlds, score_every))


def stack_worlds(worlds) -> World:
    """Worlds of one size stacked along a new leading axis (for :func:`run_grid`)."""
    worlds = list(worlds)
    if not worlds or not all(isinstance(w, World) for w in worlds):
        raise ValueError("worlds must be a non-empty sequence of World (see make_world)")
    shapes = {(w.tiles, w.tile_px, w.specimen.capacity) for w in worlds}
    if len(shapes) != 1:
        raise ValueError(f"worlds must all have one size (tiles, tile_px, capacity); got "
                         f"{sorted(shapes)}")  # fmt: skip
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *worlds)

