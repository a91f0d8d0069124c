"""The Gymnasium wrapper: every registered id passes check_env; bad actions raise clear errors."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from stemjax.worlds import stemgym


def test_sixty_ids_are_registered_on_import():
    assert len(stemgym.ENV_IDS) == 60 and len(set(stemgym.ENV_IDS)) == 60
    assert "stemjax/STEMGym-SrTiO3-hard-census-v0" in stemgym.ENV_IDS
    assert all(name in gym.registry for name in stemgym.ENV_IDS)
    assert stemgym.register_envs() == stemgym.ENV_IDS  # idempotent


@pytest.mark.parametrize("name", stemgym.ENV_IDS)
def test_check_env_passes_for_every_registered_id(name):
    env = gym.make(name, size="tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no checker warning either
        check_env(env.unwrapped)
    env.close()


def _env(**kwargs):
    return gym.make("stemjax/STEMGym-GaN-medium-search-v0", size="tiny", **kwargs).unwrapped


def test_an_episode_through_the_wrapper():
    env = _env(render_mode="rgb_array")
    obs, info = env.reset(seed=3)
    assert obs["tile"] == -1 and obs["image"].shape == (16, 16) and info["score"] == 0.0
    total, spent = 0.0, []
    for tile in range(4):
        obs, reward, terminated, truncated, info = env.step(
            {"tile": tile, "dwell_us": np.float32(10.0), "stop": 0})
        assert obs in env.observation_space
        total += reward
        spent.append(info["spent_e_per_A2"])
        if terminated:
            break
    assert np.all(np.diff(spent) >= 0) and spent[-1] <= float(env.world.budget_e_per_A2)
    np.testing.assert_allclose(total, info["score"], atol=1e-6)
    frame = env.render()
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
    if not terminated:
        obs, reward, terminated, *_ = env.step({"tile": 0, "dwell_us": 1.0, "stop": True})
        assert terminated and reward == 0.0
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({"tile": 0, "dwell_us": 1.0, "stop": 0})


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"tile": 4, "dwell_us": 1.0, "stop": 0},
         r"action\['tile'\] must be an integer in \[0, 3\] \(a tile index\); got 4"),
        ({"tile": -1, "dwell_us": 1.0, "stop": 0}, r"action\['tile'\] must be an integer"),
        ({"tile": 1.5, "dwell_us": 1.0, "stop": 0}, r"action\['tile'\] must be an integer"),
        ({"tile": 0, "dwell_us": -0.5, "stop": 0},
         r"action\['dwell_us'\] must be a number in \[0, 10.0\] µs; got -0.5"),
        ({"tile": 0, "dwell_us": float("nan"), "stop": 0}, r"action\['dwell_us'\]"),
        ({"tile": 0, "dwell_us": 11.0, "stop": 0}, r"action\['dwell_us'\]"),
        ({"tile": 0, "dwell_us": 1.0, "stop": 2}, r"action\['stop'\] must be 0, 1"),
        ({"tile": 0, "dwell_us": 1.0}, "exactly the keys"),
        ((0, 1.0, 0), "action must be a dict"),
    ],
)
def test_bad_actions_raise_a_clear_error(action, message):
    env = _env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_bad_construction_arguments_raise():
    with pytest.raises(ValueError, match="task must be one of"):
        stemgym.STEMGymEnv(task="survey", size="tiny")
    with pytest.raises(ValueError, match="render_mode must be None"):
        stemgym.STEMGymEnv(size="tiny", render_mode="human")
    with pytest.raises(ValueError, match="material must be one of"):
        stemgym.STEMGymEnv(material="Graphene", size="tiny")
    with pytest.raises(ValueError, match="world_seed must be an integer"):
        stemgym.STEMGymEnv(size="tiny", world_seed=-1)


def test_an_analyst_sets_the_reward():
    def credits_what_has_dose(frames, tile_dose, world):
        assert frames.shape == (4, 16, 16) and tile_dose.shape == (4,)
        return stemgym.ground_truth_report(world, tile_dose > 0)

    name = "stemjax/STEMGym-GaN-medium-phase-v0"
    action = {"tile": 2, "dwell_us": 0.2, "stop": 0}  # 318 e⁻/Å², below the resolve dose
    oracle = gym.make(name, size="tiny").unwrapped
    oracle.reset(seed=0)
    assert oracle.step(action)[1] == 0.0
    env = gym.make(name, size="tiny", analyst=credits_what_has_dose).unwrapped
    env.reset(seed=0)
    _, reward, _, _, info = env.step(action)
    assert reward > 0.0 and reward == info["score"]
