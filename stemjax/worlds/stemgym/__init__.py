"""STEMGym: dose-budget worlds, tasks and environments (shared/papers/000).

Five materials × three difficulty levels (:mod:`~stemjax.worlds.stemgym.worlds`), four tasks
scored in [0, 1] from a fixed-shape :class:`Report` (:mod:`~stemjax.worlds.stemgym.tasks`),
a pure functional environment that vmaps over episodes (:mod:`~stemjax.worlds.stemgym.env`)
and a Gymnasium wrapper (:mod:`~stemjax.worlds.stemgym.gym_env`). Importing this package
registers the 60 Gymnasium ids ``stemjax/STEMGym-{material}-{difficulty}-{task}-v0``.
See docs/stemgym.md.
"""

from stemjax.worlds.stemgym.env import (
    Action,
    EnvState,
    Observation,
    StepInfo,
    reset,
    rollout,
    step,
)
from stemjax.worlds.stemgym.gym_env import ENV_IDS, STEMGymEnv, env_id, register_envs
from stemjax.worlds.stemgym.tasks import (
    TASKS,
    Report,
    empty_report,
    ground_truth_report,
    task_index,
    task_score,
    task_scores,
    tile_defect_counts,
    tile_phase_maps,
    tile_target_counts,
)
from stemjax.worlds.stemgym.worlds import (
    DIFFICULTIES,
    ENERGY_KEV,
    MATERIALS,
    PIXEL_A,
    SEARCH_TARGETS,
    SEMIANGLE_MRAD,
    SIZES,
    GroundTruth,
    World,
    WorldSettings,
    fcc_column_counts,
    make_world,
    world_settings,
)

register_envs()

__all__ = [
    "DIFFICULTIES",
    "ENERGY_KEV",
    "ENV_IDS",
    "MATERIALS",
    "PIXEL_A",
    "SEARCH_TARGETS",
    "SEMIANGLE_MRAD",
    "SIZES",
    "TASKS",
    "Action",
    "EnvState",
    "GroundTruth",
    "Observation",
    "Report",
    "STEMGymEnv",
    "StepInfo",
    "World",
    "WorldSettings",
    "empty_report",
    "env_id",
    "fcc_column_counts",
    "ground_truth_report",
    "make_world",
    "register_envs",
    "reset",
    "rollout",
    "step",
    "task_index",
    "task_score",
    "task_scores",
    "tile_defect_counts",
    "tile_phase_maps",
    "tile_target_counts",
    "world_settings",
]
