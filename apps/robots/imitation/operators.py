"""The scripted operator: a box-pushing controller that stands in for the person at the keyboard.

It drives one robot from that robot's own observation (see :mod:`apps.robots.imitation.env`) and says which
behaviour it is in, the label recorded with each step:

- ``explore`` (0): no box in sight: drive forward, turn away from obstacles, now and then pick a new heading;
- ``collect`` (1): a box is in sight: drive to it until it sits in the robot's scoop;
- ``store`` (2): a box in the scoop: turn towards the storage zone and carry it there.

Because it sees what the robot sees, a policy can in principle copy it; its only memory is the exploration
heading (random turns: what a cloned policy cannot predict), which an LSTM can carry.

Example:
    >>> from apps.robots.imitation.env import BoxPushingEnv, EnvConfig
    >>> env = BoxPushingEnv(EnvConfig(n_robots=2, n_boxes=1))
    >>> obs, _ = env.reset(seed=0)
    >>> team = [ScriptedOperator(env.config, seed=i) for i in range(2)]
    >>> action, label = team[0].act(obs[0])
    >>> action.shape, BEHAVIOURS[label] in BEHAVIOURS
    ((2,), True)
"""

from __future__ import annotations

import math

import numpy as np

from apps.robots.imitation.env import EnvConfig

BEHAVIOURS = ("explore", "collect", "store")
EXPLORE, COLLECT, STORE = 0, 1, 2


class ScriptedOperator:
    """One robot's controller. ``act(observation) -> (action, label)``; ``reset()`` between episodes.

    Args:
        config: The environment's config (sensor ranges, sizes).
        seed: Seed of the exploration turns.
    """

    def __init__(self, config: EnvConfig, seed: int | None = None) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.turn = 0.0
        self.turn_steps = 0

    def reset(self) -> None:
        self.turn, self.turn_steps = 0.0, 0

    def act(self, observation: np.ndarray) -> tuple[np.ndarray, int]:
        c = self.config
        rays = observation[: c.n_rays]
        k = c.n_rays
        seen, bx, by = observation[k : k + 3]
        gx, gy = observation[k + 3 : k + 5]
        if seen < 0.5:
            return self._explore(rays), EXPLORE
        box = np.array([bx, by]) * c.box_range
        nose = c.robot_radius * 0.7
        if nose < box[0] < nose + c.scoop_depth + 0.04 and abs(box[1]) < c.scoop_width / 2:
            # in the scoop: turn towards the zone (gently, or the box slides out) and drive there
            return self._steer(np.array([gx, gy]), slow=False, max_turn=1.5), STORE
        return self._steer(box, slow=True), COLLECT

    def _steer(self, target: np.ndarray, slow: bool, max_turn: float = 3.0) -> np.ndarray:
        c = self.config
        angle = math.atan2(float(target[1]), float(target[0]))
        distance = float(np.hypot(*target))
        omega = float(np.clip(3.0 * angle, -max_turn, max_turn))
        forward = max(math.cos(angle), 0.0) ** 2
        if slow:
            forward *= min(1.0, 0.3 + distance / 0.4)
        speed = c.max_speed * forward
        turn = omega * c.wheel_base / 2
        left, right = (speed - turn) / c.max_speed, (speed + turn) / c.max_speed
        return np.clip(np.array([left, right], np.float32), -1.0, 1.0)

    def _explore(self, rays: np.ndarray) -> np.ndarray:
        front = float(min(rays[0], rays[1], rays[-1]))
        if front < 0.35:  # an obstacle ahead: turn towards the more open side
            left_open = float(rays[1 : len(rays) // 2].mean())
            right_open = float(rays[len(rays) // 2 + 1 :].mean())
            side = 1.0 if left_open >= right_open else -1.0
            return np.array([-0.6 * side, 0.6 * side], np.float32)
        if self.turn_steps <= 0:
            self.turn = float(self.rng.uniform(-0.4, 0.4))
            self.turn_steps = int(self.rng.integers(10, 30))
        self.turn_steps -= 1
        return np.clip(np.array([0.8 - self.turn, 0.8 + self.turn], np.float32), -1.0, 1.0)


__all__ = ["BEHAVIOURS", "COLLECT", "EXPLORE", "STORE", "ScriptedOperator"]
