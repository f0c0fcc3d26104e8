"""A 2-D box-pushing arena for a team of differential-drive robots, simulated with pymunk.

The arena is a walled rectangle. Its left strip (``x < zone_width``) is the storage zone; a box whose centre
enters it is stored (taken out of the simulation). An episode ends when every box is stored (``terminated``) or at
``max_steps`` (``truncated``). The API follows gymnasium's: ``reset(seed) -> (observations, info)`` and
``step(actions) -> (observations, rewards, terminated, truncated, info)``, with one observation row and one
action row per robot; ``observation_space`` and ``action_space`` describe one robot's.

Each robot sees only its own surroundings, in its own frame (x forward, y left), all values in about [-1, 1]:

========================  ====  =====================================================================
part                      size  meaning
========================  ====  =====================================================================
range rays                ``n_rays``  distance to the first wall, robot or box along evenly spaced rays,
                                 over ``ray_range`` (1.0: nothing in range)
nearest box               3     seen flag, then its relative position over ``box_range`` (0, 0 when unseen)
storage zone              3     unit vector towards the zone, distance to it over the arena's width
neighbours                2(N-1)  every other robot's relative position over the arena's width, nearest first
========================  ====  =====================================================================

Actions are wheel speeds ``(left, right)`` in [-1, 1] (times ``max_speed``). The observation's size depends on
the robot count, so a policy is tied to the count it was trained for. The previous action is not part of the
observation: a cloned policy that sees it learns to repeat it (the "copycat" failure of behaviour cloning).

Everything random (placements) comes from ``reset(seed)``; the same seed and the same actions give the same
episode, bit for bit.

Example:
    >>> env = BoxPushingEnv(EnvConfig(n_robots=2, n_boxes=2, max_steps=5))
    >>> obs, info = env.reset(seed=3)
    >>> obs.shape == (2, env.obs_dim), info["boxes_left"]
    (True, 2)
    >>> obs, rewards, terminated, truncated, info = env.step(np.zeros((2, 2)))
    >>> terminated, truncated, info["step"]
    (False, False, 1)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pymunk

from core.errors import ConfigError


@dataclass(frozen=True)
class EnvConfig:
    """The arena, the team and the sensors. Lengths in metres, times in seconds."""

    n_robots: int = 3
    n_boxes: int = 4
    width: float = 4.0
    height: float = 4.0
    zone_width: float = 0.7
    robot_radius: float = 0.12
    scoop_width: float = 0.3  # inner width of the U-shaped scoop in front of each robot
    scoop_depth: float = 0.18  # length of its arms
    box_size: float = 0.22
    max_speed: float = 0.5  # m/s of a wheel at command 1.0
    wheel_base: float = 0.25
    n_rays: int = 8
    ray_range: float = 1.0
    box_range: float = 2.0  # boxes farther than this are not seen
    dt: float = 0.1
    substeps: int = 4
    max_steps: int = 300
    box_damping: float = 0.02  # share of a box's velocity left after one second (ground friction)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, where: str = "env") -> EnvConfig:
        """Build from a config mapping; an unknown key is a :class:`~core.errors.ConfigError`.

        Example:
            >>> EnvConfig.from_dict({"n_robots": 4}).n_robots
            4
        """
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown}", where=where, hint=f"known keys: {sorted(known)}")
        config = cls(**values)
        if config.n_robots < 1 or config.n_boxes < 1:
            raise ConfigError("n_robots and n_boxes must be at least 1", where=where)
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def observation_size(config: EnvConfig) -> int:
    """The length of one robot's observation.

    Example:
        >>> observation_size(EnvConfig(n_robots=3, n_rays=8))
        18
    """
    return config.n_rays + 3 + 3 + 2 * (config.n_robots - 1)


def mirror_observations(obs: np.ndarray, n_robots: int) -> np.ndarray:
    """Observations of the mirror-image world (reflected across the arena's horizontal mid-line).

    The arena and its storage zone are symmetric under ``y → height − y``, so a reflected episode is as valid as
    the original: rays swap sides, every lateral (y) component changes sign. With :func:`mirror_actions` this
    doubles the demonstrations.

    Example:
        >>> o = np.arange(18, dtype=np.float32)[None]
        >>> mirror_observations(mirror_observations(o, 3), 3).tolist() == o.tolist()
        True
    """
    obs = np.array(obs, dtype=np.float32, copy=True)
    n_rays = obs.shape[-1] - 6 - 2 * (n_robots - 1)
    obs[..., :n_rays] = obs[..., (-np.arange(n_rays)) % n_rays]
    lateral = [n_rays + 2, n_rays + 4] + [n_rays + 6 + 2 * j + 1 for j in range(n_robots - 1)]
    obs[..., lateral] *= -1
    return obs


def mirror_actions(actions: np.ndarray) -> np.ndarray:
    """Wheel commands of the mirror-image world: left and right swap.

    Example:
        >>> mirror_actions(np.array([[0.2, 0.9]])).tolist()
        [[0.9, 0.2]]
    """
    return np.asarray(actions)[..., ::-1].copy()


@dataclass(frozen=True)
class Box:
    """Bounds of a space, as gymnasium's ``Box`` has them (gymnasium itself is not needed)."""

    low: float
    high: float
    shape: tuple[int, ...]
    dtype: type = np.float32

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.low, self.high, self.shape).astype(self.dtype)

    def contains(self, x: np.ndarray) -> bool:
        return bool(x.shape == self.shape and np.all(x >= self.low) and np.all(x <= self.high))


_WALL, _ROBOT, _BOX = 1, 2, 3


class BoxPushingEnv:
    """N robots, M boxes, one storage zone (see the module docstring).

    Attributes after ``reset``: ``robots`` and ``boxes`` (pymunk bodies), ``stored`` (a flag per box),
    ``steps``.
    """

    def __init__(self, config: EnvConfig | None = None) -> None:
        self.config = config or EnvConfig()
        self.obs_dim = observation_size(self.config)
        self.observation_space = Box(-1.0, 1.0, (self.obs_dim,))
        self.action_space = Box(-1.0, 1.0, (2,))
        self.space: pymunk.Space | None = None
        self.robots: list[pymunk.Body] = []
        self.boxes: list[pymunk.Body] = []
        self.box_shapes: list[pymunk.Shape] = []
        self.stored: list[bool] = []
        self.steps = 0
        self.last_actions = np.zeros((self.config.n_robots, 2), np.float32)
        self._angles = np.linspace(0.0, 2.0 * math.pi, self.config.n_rays, endpoint=False)

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        c = self.config
        rng = np.random.default_rng(seed)
        space = pymunk.Space()
        space.damping = 1.0
        space.iterations = 20
        corners = [(0.0, 0.0), (c.width, 0.0), (c.width, c.height), (0.0, c.height)]
        for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
            wall = pymunk.Segment(space.static_body, a, b, 0.02)
            wall.friction = 0.5
            wall.collision_type = _WALL
            space.add(wall)
        placed: list[tuple[float, float, float]] = []  # x, y, clearance radius
        half = c.box_size / 2
        self.boxes, self.box_shapes = [], []
        for _ in range(c.n_boxes):
            x, y = _place(
                rng,
                placed,
                c.zone_width + 3 * half + 0.3,
                c.width - 2 * half,
                2 * half,
                c.height - 2 * half,
                half * 1.5,
            )
            body = pymunk.Body(1.0, pymunk.moment_for_box(1.0, (c.box_size, c.box_size)))
            body.position = (x, y)
            body.angle = float(rng.uniform(0, math.pi / 2))
            body.velocity_func = _damped(c.box_damping)
            box_shape = pymunk.Poly.create_box(body, (c.box_size, c.box_size))
            box_shape.friction = 0.4
            box_shape.collision_type = _BOX
            space.add(body, box_shape)
            self.boxes.append(body)
            self.box_shapes.append(box_shape)
        self.robots = []
        for i in range(c.n_robots):
            reach = c.robot_radius + c.scoop_depth
            x, y = _place(rng, placed, c.zone_width + reach + 0.1, c.width - reach, reach, c.height - reach, reach)
            body = pymunk.Body(5.0, pymunk.moment_for_circle(5.0, 0, c.robot_radius))
            body.position = (x, y)
            body.angle = float(rng.uniform(-math.pi, math.pi))
            shapes: list[pymunk.Shape] = [pymunk.Circle(body, c.robot_radius), *_scoop(body, c)]
            for shape in shapes:
                shape.friction = 0.6
                shape.collision_type = _ROBOT
                shape.filter = pymunk.ShapeFilter(group=i + 1)  # rays of this robot pass through its own shapes
            space.add(body, *shapes)
            self.robots.append(body)
        self.space = space
        self.stored = [False] * c.n_boxes
        self.steps = 0
        self.last_actions = np.zeros((c.n_robots, 2), np.float32)
        return self.observations(), self._info()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        """Apply one row of wheel commands per robot for ``dt`` seconds.

        The reward is shared by the team: 1 for each box stored during the step.
        """
        if self.space is None:
            raise RuntimeError("call reset() before step()")
        c = self.config
        actions = np.clip(np.asarray(actions, dtype=np.float64).reshape(c.n_robots, 2), -1.0, 1.0)
        h = c.dt / c.substeps
        for _ in range(c.substeps):
            for body, (left, right) in zip(self.robots, actions, strict=True):
                speed = c.max_speed * (left + right) / 2
                body.angular_velocity = c.max_speed * (right - left) / c.wheel_base
                body.velocity = (speed * math.cos(body.angle), speed * math.sin(body.angle))
            self.space.step(h)
        newly = 0
        for k, body in enumerate(self.boxes):
            if not self.stored[k] and body.position.x < c.zone_width:
                self.stored[k] = True
                self.space.remove(body, self.box_shapes[k])
                newly += 1
        self.steps += 1
        self.last_actions = actions.astype(np.float32)
        terminated = all(self.stored)
        truncated = not terminated and self.steps >= c.max_steps
        rewards = np.full(c.n_robots, float(newly), np.float32)
        return self.observations(), rewards, terminated, truncated, self._info()

    @property
    def boxes_stored(self) -> int:
        return sum(self.stored)

    def _info(self) -> dict[str, Any]:
        return {
            "step": self.steps,
            "boxes_stored": self.boxes_stored,
            "boxes_left": len(self.stored) - self.boxes_stored,
        }

    # ------------------------------------------------------------------ sensing
    def observations(self) -> np.ndarray:
        """One observation row per robot (see the module docstring)."""
        return np.stack([self.observe(i) for i in range(self.config.n_robots)])

    def observe(self, i: int) -> np.ndarray:
        c = self.config
        assert self.space is not None
        body = self.robots[i]
        px, py = body.position
        cos, sin = math.cos(body.angle), math.sin(body.angle)
        out = np.zeros(self.obs_dim, np.float32)
        query = pymunk.ShapeFilter(group=i + 1)
        start_offset = c.robot_radius + 1e-3
        for r, angle in enumerate(self._angles):
            a = body.angle + angle
            dx, dy = math.cos(a), math.sin(a)
            start = (px + dx * start_offset, py + dy * start_offset)
            end = (px + dx * (start_offset + c.ray_range), py + dy * (start_offset + c.ray_range))
            hit = self.space.segment_query_first(start, end, 0.0, query)
            out[r] = 1.0 if hit is None else float(hit.alpha)
        k = c.n_rays
        box = self.nearest_box(i)
        if box is not None:
            bx, by = box.position.x - px, box.position.y - py
            out[k : k + 3] = (1.0, (cos * bx + sin * by) / c.box_range, (-sin * bx + cos * by) / c.box_range)
        k += 3
        # the zone lies towards -x in the world frame
        out[k : k + 3] = (-cos, sin, max(px - c.zone_width, 0.0) / c.width)
        k += 3
        others = sorted(
            ((o.position.x - px, o.position.y - py) for j, o in enumerate(self.robots) if j != i),
            key=lambda d: d[0] * d[0] + d[1] * d[1],
        )
        for ox, oy in others:
            out[k : k + 2] = ((cos * ox + sin * oy) / c.width, (-sin * ox + cos * oy) / c.width)
            k += 2
        return out

    def nearest_box(self, i: int) -> pymunk.Body | None:
        """The nearest box not yet stored within ``box_range`` of robot ``i``, or None."""
        position = self.robots[i].position
        best, best_distance = None, self.config.box_range
        for body, stored in zip(self.boxes, self.stored, strict=True):
            if stored:
                continue
            distance = (body.position - position).length
            if distance < best_distance:
                best, best_distance = body, distance
        return best

    def state(self) -> dict[str, np.ndarray]:
        """The world state (for rendering and tests): robot poses, box poses, stored flags."""
        return {
            "robots": np.array([(b.position.x, b.position.y, b.angle) for b in self.robots]),
            "boxes": np.array([(b.position.x, b.position.y, b.angle) for b in self.boxes]),
            "stored": np.array(self.stored, bool),
        }


def _place(
    rng: np.random.Generator,
    placed: list[tuple[float, float, float]],
    x0: float,
    x1: float,
    y0: float,
    y1: float,
    clearance: float,
) -> tuple[float, float]:
    for _ in range(1000):
        x, y = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
        if all((x - px) ** 2 + (y - py) ** 2 > (clearance + pr + 0.05) ** 2 for px, py, pr in placed):
            placed.append((x, y, clearance))
            return x, y
    raise ConfigError("the arena is too small for its robots and boxes", where="env", hint="lower n_robots or n_boxes")


def _scoop(body: pymunk.Body, c: EnvConfig) -> list[pymunk.Shape]:
    """A U open to the front: a back plate at the robot's nose and two arms."""
    r, w, d, t = c.robot_radius, c.scoop_width / 2 + 0.015, c.scoop_depth, 0.015
    return [
        pymunk.Segment(body, (r * 0.7, -w), (r * 0.7, w), t),
        pymunk.Segment(body, (r * 0.7, -w), (r + d, -w), t),
        pymunk.Segment(body, (r * 0.7, w), (r + d, w), t),
    ]


def _damped(keep_per_second: float) -> Any:
    def velocity_func(body: pymunk.Body, gravity: Any, damping: float, dt: float) -> None:
        pymunk.Body.update_velocity(body, gravity, keep_per_second**dt, dt)

    return velocity_func


__all__ = ["Box", "BoxPushingEnv", "EnvConfig", "mirror_actions", "mirror_observations", "observation_size"]
