"""Demonstrations: the recording round trip through core.data, the rounds protocol, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apps.robots.imitation.demos import FORMAT, load_demonstrations, record_round, write_demonstrations
from apps.robots.imitation.env import BoxPushingEnv, EnvConfig
from apps.robots.imitation.operators import ScriptedOperator
from apps.robots.imitation.team import ExpertTeam
from core.data import HDF5Writer, RawHDF5Dataset
from core.errors import UserError


def test_round_trip_keeps_every_array_and_field(tmp_path: Path, small_env: EnvConfig) -> None:
    demos = record_round(small_env, 0, seeds=[1000, 1001], noise=0.3)
    path = tmp_path / "demos.h5"
    write_demonstrations(demos, path)
    back = load_demonstrations(path, n_robots=3)
    assert [d.seed for d in back] == [1000, 1001]
    for before, after in zip(demos, back, strict=True):
        np.testing.assert_array_equal(before.obs, after.obs)
        np.testing.assert_array_equal(before.action, after.action)
        np.testing.assert_array_equal(before.label, after.label)
        assert (after.round, after.robot, after.n_robots, after.operator) == (0, 0, 3, "scripted")
        assert after.env == small_env.to_dict()
    assert RawHDF5Dataset(path)[0]["format"].decode() == FORMAT  # a plain core.data file


def test_recorded_actions_are_the_operators_and_the_noise_only_moves_the_robot(small_env: EnvConfig) -> None:
    """Round 0 replayed by hand: the recorded observations are robot 0's and its actions the operator's
    clean commands; with noise the executed commands differ, so the observations do too."""
    (clean,) = record_round(small_env, 0, seeds=[1000], noise=0.0)
    env = BoxPushingEnv(small_env)
    obs, _ = env.reset(seed=1000)
    operator = ScriptedOperator(small_env, seed=1000)
    for t in range(len(clean.obs)):
        np.testing.assert_array_equal(obs[0], clean.obs[t])
        action, label = operator.act(obs[0])
        np.testing.assert_array_equal(action, clean.action[t])
        assert label == clean.label[t]
        team = np.zeros((3, 2), np.float32)
        team[0] = action
        obs, *_ = env.step(team)
    (noisy,) = record_round(small_env, 0, seeds=[1000], noise=0.3)
    assert not np.array_equal(noisy.obs, clean.obs)


def test_later_rounds_operate_the_next_robot_among_the_previous_team(small_env: EnvConfig) -> None:
    (demo,) = record_round(small_env, 1, seeds=[1100], previous=ExpertTeam(small_env), warmup_steps=20)
    assert demo.robot == 1 and demo.round == 1
    # recorded from the take-over on, until the step limit or the last box stored
    assert len(demo.obs) == small_env.max_steps - 20 or (demo.boxes_stored == small_env.n_boxes and len(demo.obs) < 40)
    with pytest.raises(UserError, match="previous round"):
        record_round(small_env, 1, seeds=[1100])


def test_another_format_and_another_team_size_are_refused(tmp_path: Path, small_env: EnvConfig) -> None:
    other = tmp_path / "other.h5"
    HDF5Writer(other).write([{"x": np.zeros(3)}])
    with pytest.raises(UserError, match="not a demonstration file"):
        load_demonstrations(other)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(UserError, match="cannot open HDF5"):
        load_demonstrations(text)
    path = tmp_path / "demos.h5"
    write_demonstrations(record_round(small_env, 0, seeds=[1000]), path)
    with pytest.raises(UserError, match="recorded with 3 robots, the config has 4"):
        load_demonstrations(path, n_robots=4)
