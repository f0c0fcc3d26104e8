"""Team controllers: what drives all N robots of an episode.

A controller has ``reset(n_robots)`` and ``act(observations) -> (actions, behaviours)``, one row per robot
(behaviour ``-1`` where none is known). Every controller is decentralised: row ``i`` of the actions depends only
on row ``i`` of the observations (and robot ``i``'s own memory).

- :class:`ExpertTeam`: a :class:`~apps.robots.imitation.operators.ScriptedOperator` per robot.
- :class:`RandomTeam`: uniform random wheel commands.
- :class:`PolicyTeam`: one trained policy, copied to every robot: the same weights, a separate LSTM state per
  robot. (The robots are evaluated as one batch only to save time; rows of a batch do not interact.)
- :class:`IdleTeam`: every robot stands still.

Example:
    >>> import numpy as np
    >>> from apps.robots.imitation.env import EnvConfig
    >>> team = RandomTeam(seed=0)
    >>> team.reset(3)
    >>> actions, behaviours = team.act(np.zeros((3, 20), np.float32))
    >>> actions.shape, behaviours.tolist()
    ((3, 2), [-1, -1, -1])
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from apps.robots.imitation.env import EnvConfig
from apps.robots.imitation.operators import ScriptedOperator


class TeamController(Protocol):
    def reset(self, n_robots: int) -> None: ...

    def act(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class ExpertTeam:
    """The scripted operator on every robot; robot ``i`` explores with seed ``(seed, i)``."""

    def __init__(self, config: EnvConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        self.operators: list[ScriptedOperator] = []

    def reset(self, n_robots: int) -> None:
        self.operators = [ScriptedOperator(self.config, seed=self.seed * 1000 + i) for i in range(n_robots)]

    def act(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pairs = [op.act(o) for op, o in zip(self.operators, observations, strict=True)]
        return np.stack([a for a, _ in pairs]), np.array([label for _, label in pairs])


class RandomTeam:
    """Uniform wheel commands in [-1, 1]."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, n_robots: int) -> None:
        self.n_robots = n_robots

    def act(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(observations)
        return self.rng.uniform(-1.0, 1.0, (n, 2)).astype(np.float32), np.full(n, -1)


class IdleTeam:
    """Zero wheel commands."""

    def reset(self, n_robots: int) -> None:
        pass

    def act(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(observations)
        return np.zeros((n, 2), np.float32), np.full(n, -1)


class PolicyTeam:
    """A trained policy (``MoELSTMPolicy`` or ``LSTMPolicy``) on every robot, each with its own LSTM state.

    Args:
        model: The policy network, in eval mode.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.state: Any = None

    def reset(self, n_robots: int) -> None:
        self.state = None

    def act(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            obs = torch.from_numpy(np.asarray(observations, np.float32)).unsqueeze(1)  # (N, 1, D)
            out = self.model(obs, self.state)
        self.state = out.state
        actions = out.actions[:, 0].numpy()
        if out.gate_logits is None:
            return actions, np.full(len(actions), -1)
        return actions, out.gate_logits[:, 0].argmax(-1).numpy()


__all__ = ["ExpertTeam", "IdleTeam", "PolicyTeam", "RandomTeam", "TeamController"]
