"""The arena: seeded determinism, the mirror symmetry the augmentation relies on, storing and episode ends."""

from __future__ import annotations

import numpy as np
import pytest

from apps.robots.imitation.env import BoxPushingEnv, EnvConfig, mirror_actions, mirror_observations
from apps.robots.imitation.operators import ScriptedOperator
from apps.robots.imitation.team import ExpertTeam
from core.errors import ConfigError


def _rollout(config: EnvConfig, seed: int, action_seed: int, steps: int = 40) -> tuple[np.ndarray, np.ndarray]:
    env = BoxPushingEnv(config)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    trace = [obs]
    for _ in range(steps):
        obs, *_ = env.step(rng.uniform(-1, 1, (config.n_robots, 2)))
        trace.append(obs)
    return np.stack(trace), np.concatenate([env.state()["robots"].ravel(), env.state()["boxes"].ravel()])


def test_same_seed_same_episode_bit_for_bit(small_env: EnvConfig) -> None:
    obs_a, state_a = _rollout(small_env, seed=7, action_seed=1)
    obs_b, state_b = _rollout(small_env, seed=7, action_seed=1)
    assert np.array_equal(obs_a, obs_b) and np.array_equal(state_a, state_b)
    obs_c, _ = _rollout(small_env, seed=8, action_seed=1)
    assert not np.array_equal(obs_a[0], obs_c[0])  # another seed, another arena


def test_spaces_and_observation_bounds(small_env: EnvConfig) -> None:
    env = BoxPushingEnv(small_env)
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, env.obs_dim) and env.observation_space.shape == (env.obs_dim,)
    assert all(env.observation_space.contains(row) for row in obs)
    assert env.action_space.contains(env.action_space.sample(np.random.default_rng(0)))
    assert info == {"step": 0, "boxes_stored": 0, "boxes_left": 3}


def test_mirror_of_the_world_is_the_mirror_of_the_observations(small_env: EnvConfig) -> None:
    """Reflecting the arena about y = height/2 and swapping the wheels gives the mirrored observations."""
    env, twin = BoxPushingEnv(small_env), BoxPushingEnv(small_env)
    env.reset(seed=4)
    twin.reset(seed=4)
    for body in twin.robots + twin.boxes:
        body.position = (body.position.x, small_env.height - body.position.y)
        body.angle = -body.angle
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = rng.uniform(-1, 1, (3, 2))
        obs, *_ = env.step(actions)
        mirrored, *_ = twin.step(mirror_actions(actions))
        np.testing.assert_allclose(mirror_observations(obs, 3), mirrored, atol=1e-5)


def test_a_box_in_the_zone_is_stored_and_the_last_one_ends_the_episode() -> None:
    env = BoxPushingEnv(EnvConfig(n_robots=1, n_boxes=2, max_steps=50))
    env.reset(seed=0)
    env.boxes[0].position = (0.2, 1.0)
    _, rewards, terminated, _, info = env.step(np.zeros((1, 2)))
    assert rewards.tolist() == [1.0] and info["boxes_stored"] == 1 and not terminated
    env.boxes[1].position = (0.3, 3.0)
    _, _, terminated, truncated, info = env.step(np.zeros((1, 2)))
    assert terminated and not truncated and info["boxes_left"] == 0


def test_step_limit_truncates() -> None:
    env = BoxPushingEnv(EnvConfig(n_robots=2, n_boxes=1, max_steps=3))
    env.reset(seed=0)
    ends = [env.step(np.zeros((2, 2)))[2:4] for _ in range(3)]
    assert ends == [(False, False), (False, False), (False, True)]


def test_scripted_team_stores_boxes() -> None:
    """The expert the policies are measured against does its job (most boxes within the step limit)."""
    config = EnvConfig()
    env = BoxPushingEnv(config)
    stored = []
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        team = ExpertTeam(config, seed=seed)
        team.reset(config.n_robots)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(team.act(obs)[0])
            done = terminated or truncated
        stored.append(env.boxes_stored)
    assert np.mean(stored) >= 2.5, stored


def test_operator_labels_follow_what_the_robot_sees(small_env: EnvConfig) -> None:
    operator = ScriptedOperator(small_env, seed=0)
    obs = np.ones(BoxPushingEnv(small_env).obs_dim, np.float32)
    k = small_env.n_rays
    obs[k : k + 3] = 0.0  # no box in sight
    assert operator.act(obs)[1] == 0
    obs[k : k + 3] = (1.0, 1.0 / small_env.box_range, 0.0)  # a box 1 m ahead
    assert operator.act(obs)[1] == 1
    obs[k : k + 3] = (1.0, 0.2 / small_env.box_range, 0.0)  # a box in the scoop
    assert operator.act(obs)[1] == 2


def test_unknown_env_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="n_robot"):
        EnvConfig.from_dict({"n_robot": 3})
