"""Demonstrations: recording one operated robot among its team, the rounds protocol, and the HDF5 format.

**Rounds** (after R2BC, round-robin behaviour cloning). In round 0 the operator drives robot 0 while the other
robots stand still; the policy learned from those demonstrations is copied to every robot. In round ``r ≥ 1`` the
previous round's team (that policy on every robot) works alone for ``warmup_steps``; then the operator takes over
robot ``r mod N`` in the arena that team left, while the other robots go on running the policy. Only the operated
robot's steps are recorded: its observations, the operator's commands and, optionally, behaviour labels.

**Noise.** ``noise > 0`` adds Gaussian noise of that standard deviation to the commands the operated robot
executes, while the recorded command stays the operator's (DART, Laskey et al. 2017): the demonstrations then
show how to recover from small mistakes, which behaviour cloning from few demonstrations needs.

**Format.** One HDF5 file written by :class:`core.data.HDF5Writer`, one group per episode holding ``format``
(:data:`FORMAT`), ``obs`` (T, D) float32, ``action`` (T, 2) float32, ``label`` (T,) int8 (``-1``: unlabelled),
``seed``, ``round``, ``robot``, ``n_robots``, ``obs_dim``, ``operator`` and ``env`` (the environment's config as
JSON). :func:`load_demonstrations` refuses any other file with one :class:`~core.errors.UserError`.

Example:
    >>> import tempfile, os
    >>> from apps.robots.imitation.env import EnvConfig
    >>> env_config = EnvConfig(n_robots=2, n_boxes=1, max_steps=20)
    >>> episodes = record_round(env_config, round_index=0, seeds=[100, 101])
    >>> path = os.path.join(tempfile.mkdtemp(), "demos.h5")
    >>> write_demonstrations(episodes, path)
    >>> demos = load_demonstrations(path, n_robots=2)
    >>> len(demos), demos[0].obs.shape[1] == demos[0].obs_dim, demos[1].seed
    (2, True, 101)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.robots.imitation.env import BoxPushingEnv, EnvConfig
from apps.robots.imitation.operators import ScriptedOperator
from apps.robots.imitation.team import IdleTeam, TeamController
from core.errors import UserError

FORMAT = "kakehashi.robots.imitation.demonstrations/1"
_FIELDS = ("obs", "action", "label", "seed", "round", "robot", "n_robots", "obs_dim", "operator", "env")

log = logging.getLogger(__name__)


@dataclass
class Demonstration:
    """One recorded episode of the operated robot."""

    obs: np.ndarray  # (T, obs_dim) float32
    action: np.ndarray  # (T, 2) float32: the operator's commands
    label: np.ndarray  # (T,) int8: behaviour labels, -1 where none
    seed: int
    round: int
    robot: int
    n_robots: int
    obs_dim: int
    operator: str
    env: dict[str, Any]
    boxes_stored: int = 0

    def to_sample(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "obs": self.obs.astype(np.float32),
            "action": self.action.astype(np.float32),
            "label": self.label.astype(np.int8),
            "seed": np.int64(self.seed),
            "round": np.int64(self.round),
            "robot": np.int64(self.robot),
            "n_robots": np.int64(self.n_robots),
            "obs_dim": np.int64(self.obs_dim),
            "operator": self.operator,
            "env": json.dumps(self.env, sort_keys=True),
            "boxes_stored": np.int64(self.boxes_stored),
        }


Operator = Callable[[np.ndarray], tuple[np.ndarray, int]]


class EpisodeRecorder:
    """Steps an environment with one operated robot and the rest of the team; keeps the operated robot's record.

    ``begin(seed)`` resets and runs the warm-up; then ``step(action, label)`` until ``done``; ``demonstration()``.
    The keyboard interface drives it from a GUI loop, the scripted operator from a plain loop.
    """

    def __init__(
        self,
        env: BoxPushingEnv,
        robot: int,
        others: TeamController,
        round_index: int,
        operator: str,
        warmup_steps: int = 0,
        noise: float = 0.0,
        label_steps: bool = True,
    ) -> None:
        if not 0 <= robot < env.config.n_robots:
            raise UserError(
                f"robot {robot} does not exist",
                where="record.robot",
                hint=f"the team has robots 0..{env.config.n_robots - 1}",
            )
        self.env, self.robot, self.others = env, robot, others
        self.round_index, self.operator, self.warmup_steps = round_index, operator, warmup_steps
        self.noise, self.label_steps = noise, label_steps

    def begin(self, seed: int) -> np.ndarray:
        self.seed = seed
        self.rng = np.random.default_rng([seed, 7])
        self.obs, _ = self.env.reset(seed=seed)
        self.others.reset(self.env.config.n_robots)
        self.done = False
        self.records: tuple[list[np.ndarray], list[np.ndarray], list[int]] = ([], [], [])
        for _ in range(self.warmup_steps):  # the previous round's team works alone
            actions, _ = self.others.act(self.obs)
            self.obs, _, terminated, truncated, _ = self.env.step(actions)
            if terminated or truncated:
                self.done = True
                break
        own: np.ndarray = self.obs[self.robot]
        return own

    def step(self, action: np.ndarray, label: int) -> np.ndarray:
        observations, actions, labels = self.records
        observations.append(self.obs[self.robot].copy())
        actions.append(np.asarray(action, np.float32))
        labels.append(label if self.label_steps else -1)
        team_actions, _ = self.others.act(self.obs)
        executed = np.asarray(action, np.float32)
        if self.noise > 0:
            executed = np.clip(executed + self.rng.normal(0.0, self.noise, 2), -1.0, 1.0)
        team_actions = np.array(team_actions, np.float32)
        team_actions[self.robot] = executed
        self.obs, _, terminated, truncated, _ = self.env.step(team_actions)
        self.done = terminated or truncated
        own: np.ndarray = self.obs[self.robot]
        return own

    def demonstration(self) -> Demonstration:
        observations, actions, labels = self.records
        c = self.env.config
        return Demonstration(
            obs=np.array(observations, np.float32).reshape(-1, self.env.obs_dim),
            action=np.array(actions, np.float32).reshape(-1, 2),
            label=np.array(labels, np.int8),
            seed=self.seed,
            round=self.round_index,
            robot=self.robot,
            n_robots=c.n_robots,
            obs_dim=self.env.obs_dim,
            operator=self.operator,
            env=c.to_dict(),
            boxes_stored=self.env.boxes_stored,
        )


def operated_robot(round_index: int, n_robots: int) -> int:
    """The robot the operator drives in a round: round-robin over the team.

    Example:
        >>> [operated_robot(r, 3) for r in range(5)]
        [0, 1, 2, 0, 1]
    """
    return round_index % n_robots


def record_round(
    env_config: EnvConfig,
    round_index: int,
    seeds: Sequence[int],
    previous: TeamController | None = None,
    warmup_steps: int = 100,
    noise: float = 0.0,
    label_steps: bool = True,
    on_episode: Callable[[Demonstration], None] | None = None,
) -> list[Demonstration]:
    """Record one round with the scripted operator, one episode per seed (see the module docstring).

    Args:
        env_config: The environment.
        round_index: 0 for the first round (other robots idle, no warm-up); later rounds need ``previous``.
        seeds: Environment seeds, one per demonstration.
        previous: The previous round's team (a :class:`~apps.robots.imitation.team.PolicyTeam`).
        warmup_steps: Steps the previous team works alone before the operator takes over (rounds ≥ 1).
        noise: Standard deviation of the noise added to the executed commands.
        label_steps: Record behaviour labels (else every label is -1).
        on_episode: Called with each finished demonstration (progress).
    """
    if round_index > 0 and previous is None:
        raise UserError(
            f"round {round_index} needs the previous round's policy",
            where="record.policy",
            hint="train on round 0's demonstrations and pass its run directory",
        )
    env = BoxPushingEnv(env_config)
    robot = operated_robot(round_index, env_config.n_robots)
    team = previous if round_index > 0 and previous is not None else IdleTeam()
    recorder = EpisodeRecorder(
        env, robot, team, round_index, "scripted", warmup_steps if round_index > 0 else 0, noise, label_steps
    )
    out = []
    for seed in seeds:
        operator = ScriptedOperator(env_config, seed=seed)
        observation = recorder.begin(seed)
        while not recorder.done:
            action, label = operator.act(observation)
            observation = recorder.step(action, label)
        demo = recorder.demonstration()
        log.info("round %d seed %d: %d steps, %d boxes stored", round_index, seed, len(demo.obs), demo.boxes_stored)
        if not len(demo.obs):
            log.warning(
                "round %d seed %d ended before the operator took over: an empty demonstration", round_index, seed
            )
        out.append(demo)
        if on_episode is not None:
            on_episode(demo)
    return out


def write_demonstrations(demos: Sequence[Demonstration], path: str | Path, overwrite: bool = True) -> None:
    """Write demonstrations to one HDF5 file (through :class:`core.data.HDF5Writer`)."""
    from core.data import HDF5Writer

    HDF5Writer(path, overwrite=overwrite).write([(f"episode-{i:05d}", d.to_sample()) for i, d in enumerate(demos)])


def load_demonstrations(paths: str | Path | Sequence[str | Path], n_robots: int | None = None) -> list[Demonstration]:
    """Read demonstration files; a file of another format, or for another team size, is a UserError."""
    from core.data import RawHDF5Dataset

    if isinstance(paths, str | Path):
        paths = [paths]
    out: list[Demonstration] = []
    for path in paths:
        if not Path(path).is_file():
            raise UserError("demonstration file not found", where=str(path), hint="record one: kakehashi robots record")
        dataset = RawHDF5Dataset(path)
        hint = "give a file written by `kakehashi robots record`"
        if len(dataset) == 0:
            raise UserError("no demonstrations in the file", where=str(path), hint=hint)
        for index in range(len(dataset)):
            sample = dataset[index]
            found = _text(sample.get("format"))
            if found != FORMAT:
                raise UserError(
                    f"not a demonstration file (format {found or 'missing'!r}, expected {FORMAT!r})",
                    where=f"{path}, episode {index}",
                    hint=hint,
                )
            missing = [key for key in _FIELDS if key not in sample]
            if missing:
                raise UserError(f"demonstration lacks {missing}", where=f"{path}, episode {index}", hint=hint)
            demo = Demonstration(
                obs=np.asarray(sample["obs"], np.float32).reshape(-1, int(sample["obs_dim"])),
                action=np.asarray(sample["action"], np.float32).reshape(-1, 2),
                label=np.asarray(sample["label"], np.int8).reshape(-1),
                seed=int(sample["seed"]),
                round=int(sample["round"]),
                robot=int(sample["robot"]),
                n_robots=int(sample["n_robots"]),
                obs_dim=int(sample["obs_dim"]),
                operator=_text(sample["operator"]),
                env=json.loads(_text(sample["env"])),
                boxes_stored=int(sample.get("boxes_stored", 0)),
            )
            if n_robots is not None and demo.n_robots != n_robots:
                raise UserError(
                    f"demonstrations recorded with {demo.n_robots} robots, the config has {n_robots}",
                    where=f"{path}, episode {index}",
                    hint=f"record with env.n_robots={n_robots} or set env.n_robots={demo.n_robots}",
                )
            out.append(demo)
        dataset.close()
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value.tobytes()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


__all__ = [
    "FORMAT",
    "Demonstration",
    "EpisodeRecorder",
    "load_demonstrations",
    "operated_robot",
    "record_round",
    "write_demonstrations",
]
