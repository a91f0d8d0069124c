"""Gymnasium wrapper of the functional STEMGym environment, and its 60 registered ids.

``import stemjax.worlds.stemgym`` registers one id per material × difficulty × task::

    import gymnasium as gym
    import stemjax.worlds.stemgym  # noqa: F401  (registers the ids)
    env = gym.make("stemjax/STEMGym-SrTiO3-hard-census-v0", size="small")

Spaces (T tiles of p × p positions):

- action: ``Dict(tile=Discrete(T), dwell_us=Box(0, max_dwell_us, (), float32),
  stop=Discrete(2))``. Actions outside the space (a tile out of range, a negative, NaN or
  too long dwell, a missing key) raise a ``ValueError`` naming the field, the allowed range
  and the value given; the functional environment clips them instead.
- observation: ``Dict(image=Box(-10σ, 2·N + 10σ + 100, (p, p), float32)`` (this step's
  frame, detected electrons; σ the read noise, N the electrons per position at the longest
  dwell), ``tile=Discrete(T + 1, start=-1)`` (−1: nothing imaged),
  ``dwell_us=Box(0, max_dwell_us, (), float32)``, ``tile_dose=Box(0, 1.01·budget·T, (T,),
  float32)`` (e⁻/Å² per tile), ``dose_fraction=Box(0, 1, (), float32)``).

Reward: the increase of the oracle's task score (see :mod:`stemjax.worlds.stemgym.env`), so
the rewards of an episode sum to its final score. With ``analyst=f``, the reward is instead
the increase of ``task_score(task, world, f(frames, tile_dose, world), observed)``, with
``frames`` the (T, p, p) summed frames and ``tile_dose`` the (T,) doses, as NumPy arrays.

Worlds are built once per (material, difficulty, size, world_seed, settings) and cached, and
every world of one size shares one compiled step, so making many environments is cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces

from stemjax.worlds.stemgym import env as functional
from stemjax.worlds.stemgym.tasks import TASKS, Report, task_index, task_score
from stemjax.worlds.stemgym.worlds import DIFFICULTIES, MATERIALS, World, make_world

__all__ = ["ENV_IDS", "STEMGymEnv", "env_id", "register_envs"]


def env_id(material: str, difficulty: str, task: str) -> str:
    """The registered id, e.g. ``"stemjax/STEMGym-SrTiO3-hard-census-v0"``."""
    return f"stemjax/STEMGym-{material}-{difficulty}-{task}-v0"


ENV_IDS = tuple(env_id(m, d, t) for m in MATERIALS for d in DIFFICULTIES for t in TASKS)
"""All 60 ids, material-major."""


@functools.lru_cache(maxsize=None)
def _world(material: str, difficulty: str, size: str, world_seed: int, settings) -> World:
    return make_world(jax.random.key(world_seed), material, difficulty, size, **dict(settings))


class STEMGymEnv(gym.Env):
    """One STEMGym world and task as a ``gymnasium.Env`` (see the module docstring).

    Args:
        material: one of ``MATERIALS``.
        difficulty: one of ``DIFFICULTIES``.
        task: one of ``TASKS``.
        size: one of ``SIZES`` ("default" 8 × 8 tiles of 32 px; "small"; "tiny" for tests).
        world_seed: integer seed of the world (the specimen); episodes are seeded by
            ``reset(seed=...)``.
        render_mode: None or "rgb_array" (the field of summed frames, each tile scaled by
            its dose).
        analyst: None for the oracle reward, or ``f(frames, tile_dose, world) -> Report``.
        **settings: world settings to override (see ``WorldSettings``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        material: str = "SrTiO3",
        difficulty: str = "medium",
        task: str = "census",
        size: str = "default",
        world_seed: int = 0,
        render_mode: str | None = None,
        analyst: Callable[..., Report] | None = None,
        **settings,
    ):
        if not isinstance(task, str):
            raise ValueError(f"task must be one of {TASKS}; got {task!r}")
        task_index(task)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of "
                             f"{self.metadata['render_modes']}; got {render_mode!r}")  # fmt: skip
        if isinstance(world_seed, bool) or not isinstance(world_seed, (int, np.integer)) or \
                not 0 <= world_seed < 2**32:  # fmt: skip
            raise ValueError(f"world_seed must be an integer in [0, 2**32 - 1]; got {world_seed!r}")
        if analyst is not None and not callable(analyst):
            raise ValueError(f"analyst must be None or a callable returning a Report; got "
                             f"{analyst!r}")  # fmt: skip
        self.world = _world(material, difficulty, size, int(world_seed),
                            tuple(sorted(settings.items())))  # fmt: skip
        self.task = task
        self.render_mode = render_mode
        self.analyst = analyst
        w = self.world
        t, (p, _) = w.n_tiles, w.tile_shape
        self._max_dwell = float(w.max_dwell_us)
        # frames hold detected electrons plus read noise: at most the electrons per position
        # (doubled, for the shot noise) and 10 σ of read noise either side
        sigma = float(w.read_noise)
        electrons = float(w.dose_per_us) * self._max_dwell * w.pixel_A**2
        low, high = 10.0 * sigma, 2.0 * electrons + 10.0 * sigma + 100.0
        self.action_space = spaces.Dict({
            "tile": spaces.Discrete(t),
            "dwell_us": spaces.Box(0.0, self._max_dwell, (), np.float32),
            "stop": spaces.Discrete(2),
        })  # fmt: skip
        self.observation_space = spaces.Dict({
            "image": spaces.Box(-low, high, (p, p), np.float32),
            "tile": spaces.Discrete(t + 1, start=-1),
            "dwell_us": spaces.Box(0.0, self._max_dwell, (), np.float32),
            "tile_dose": spaces.Box(0.0, 1.01 * float(w.budget_e_per_A2) * t, (t,), np.float32),
            "dose_fraction": spaces.Box(0.0, 1.0, (), np.float32),
        })  # fmt: skip
        self._state: functional.EnvState | None = None
        self._key = None
        self._score = 0.0

    # ---------------------------------------------------------------------------------------

    def _observation(self, obs: functional.Observation) -> dict:
        obs = jax.device_get(obs)
        return {
            "image": np.array(obs.image, np.float32),
            "tile": np.int64(obs.tile),
            "dwell_us": np.array(min(float(obs.dwell_us), self._max_dwell), np.float32),
            "tile_dose": np.array(obs.tile_dose, np.float32),
            "dose_fraction": np.array(np.clip(float(obs.dose_fraction), 0.0, 1.0), np.float32),
        }

    def _info(self) -> dict:
        state = jax.device_get(self._state)
        return {
            "score": self._score,
            "spent_e_per_A2": float(state.spent_e_per_A2),
            "coverage": float(np.mean(state.tile_dose > 0)),
            "time_s": float(state.time_s),
            "steps": int(state.steps),
        }

    def _check_action(self, action) -> functional.Action:
        t = self.world.n_tiles
        if not isinstance(action, Mapping):
            raise ValueError("action must be a dict with keys 'tile', 'dwell_us' and 'stop'; "
                             f"got {type(action).__name__}")  # fmt: skip
        if set(action) != {"tile", "dwell_us", "stop"}:
            raise ValueError("action must have exactly the keys 'tile', 'dwell_us' and 'stop'; "
                             f"got {sorted(map(str, action))}")  # fmt: skip
        tile = np.asarray(action["tile"])
        if tile.size != 1 or not np.issubdtype(tile.dtype, np.integer) or not 0 <= int(tile) < t:
            raise ValueError(f"action['tile'] must be an integer in [0, {t - 1}] (a tile index); "
                             f"got {action['tile']!r}")  # fmt: skip
        dwell = np.asarray(action["dwell_us"])
        ok = dwell.size == 1 and np.issubdtype(dwell.dtype, np.number) and \
            np.isfinite(float(dwell)) and 0.0 <= float(dwell) <= self._max_dwell  # fmt: skip
        if not ok:
            raise ValueError(f"action['dwell_us'] must be a number in [0, {self._max_dwell}] µs; "
                             f"got {action['dwell_us']!r}")  # fmt: skip
        stop = np.asarray(action["stop"])
        if stop.size != 1 or not (np.issubdtype(stop.dtype, np.integer) or stop.dtype == bool) \
                or int(stop) not in (0, 1):  # fmt: skip
            raise ValueError(f"action['stop'] must be 0, 1, False or True; got {action['stop']!r}")
        return functional.Action(int(tile), float(dwell), bool(int(stop)))

    def _analyst_score(self) -> float:
        state = jax.device_get(self._state)
        report = self.analyst(np.asarray(state.frames), np.asarray(state.tile_dose), self.world)
        return float(task_score(self.task, self.world, report, jnp.asarray(state.tile_dose > 0)))

    # ---------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` fixes it (noise, damage, drift direction)."""
        super().reset(seed=seed)
        if options:
            raise ValueError(f"options are not used by STEMGym; got {options!r}")
        key = jax.random.key(int(self.np_random.integers(0, 2**31 - 1)))
        k_reset, self._key = jax.random.split(key)
        self._state, obs = functional.reset(k_reset, self.world, self.task)
        self._score = float(self._state.score) if self.analyst is None else self._analyst_score()
        return self._observation(obs), self._info()

    def step(self, action):
        """Image a tile (or stop); returns (obs, reward, terminated, truncated, info)."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if bool(self._state.done):
            raise RuntimeError("the episode has ended; call reset() before step()")
        act = self._check_action(action)
        self._key, key = jax.random.split(self._key)
        self._state, obs, reward, terminated, truncated, info = functional.step(
            key, self._state, act, self.world
        )
        if self.analyst is None:
            score = float(self._state.score)
            reward = float(reward)
        else:
            score = self._analyst_score()
            reward = score - self._score
        self._score = score
        info = jax.device_get(info)
        details = self._info() | {
            "tile": int(info.tile),
            "dwell_us": float(info.dwell_us),
            "dose_e_per_A2": float(info.dose_e_per_A2),
            "dwell_truncated": bool(info.dwell_truncated),
            "displaced": float(info.displaced),
            "drift_A": np.array(info.drift_A, np.float32),
        }
        return self._observation(obs), reward, bool(terminated), bool(truncated), details

    def render(self):
        """(H, W, 3) uint8 field: each tile's summed frames divided by its dose, 0 if unseen."""
        if self.render_mode is None or self._state is None:
            return None
        state = jax.device_get(self._state)
        w = self.world
        n, p = w.tiles, w.tile_px
        dose = np.asarray(state.tile_dose)[:, None, None]
        tiles = np.where(dose > 0, np.asarray(state.frames) / np.where(dose > 0, dose, 1.0), 0.0)
        field = tiles.reshape(n, n, p, p).transpose(0, 2, 1, 3).reshape(n * p, n * p)[::-1]
        high = np.percentile(field, 99.5) if np.any(field > 0) else 1.0
        gray = np.clip(255.0 * field / max(high, 1e-12), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)


def register_envs() -> tuple[str, ...]:
    """Register every id in :data:`ENV_IDS` with Gymnasium (idempotent); returns them."""
    for material in MATERIALS:
        for difficulty in DIFFICULTIES:
            for task in TASKS:
                name = env_id(material, difficulty, task)
                if name not in gym.registry:
                    gym.register(
                        id=name,
                        entry_point="stemjax.worlds.stemgym.gym_env:STEMGymEnv",
                        kwargs={"material": material, "difficulty": difficulty, "task": task},
                    )
    return ENV_IDS

