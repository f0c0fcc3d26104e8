"""Keyboard teleoperation of one robot in a window (tkinter), recorded in the scripted operator's format.

Arrow keys drive the operated robot (up: forward, down: back, left/right: turn; combine them to curve);
``1``/``2``/``3`` set the behaviour label being demonstrated (explore, collect, store), ``0`` clears it;
``Escape`` ends the episode early. The other robots are idle (round 0) or run the previous round's policy. The
window needs a display: without one, :func:`record_keyboard` raises a :class:`~core.errors.UserError` that says
to use the scripted operator.

Example:
    >>> import os
    >>> from apps.robots.imitation.env import EnvConfig
    >>> if not os.environ.get("DISPLAY"):
    ...     try:
    ...         record_keyboard(EnvConfig(), 0, [1000])
    ...     except UserError as exc:
    ...         print(exc.what)
    ... else:
    ...     print("no display: keyboard teleoperation needs a window")
    no display: keyboard teleoperation needs a window
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from apps.robots.imitation.demos import Demonstration, EpisodeRecorder, operated_robot
from apps.robots.imitation.env import BoxPushingEnv, EnvConfig
from apps.robots.imitation.team import IdleTeam, TeamController
from core.errors import DependencyError, UserError

_LABEL_KEYS = {"0": -1, "1": 0, "2": 1, "3": 2}


def wheel_commands(pressed: set[str]) -> np.ndarray:
    """Wheel commands for the arrow keys held down.

    Example:
        >>> [wheel_commands(keys).astype(float).round(2).tolist() for keys in ({"Up"}, {"Up", "Left"})]
        [[0.8, 0.8], [0.3, 0.8]]
    """
    forward = 0.8 * (("Up" in pressed) - ("Down" in pressed))
    turn = 0.5 * (("Left" in pressed) - ("Right" in pressed))
    if forward == 0:
        turn *= 1.2
        return np.clip(np.array([-turn, turn], np.float32), -1, 1)
    if forward > 0:
        return np.clip(np.array([forward - max(turn, 0), forward + min(turn, 0)], np.float32), -1, 1)
    return np.clip(np.array([forward, forward], np.float32) + np.array([-turn, turn], np.float32) * 0.5, -1, 1)


def record_keyboard(
    env_config: EnvConfig,
    round_index: int,
    seeds: Sequence[int],
    previous: TeamController | None = None,
    warmup_steps: int = 100,
    on_episode: Callable[[Demonstration], None] | None = None,
) -> list[Demonstration]:
    """One keyboard-driven episode per seed, shown in a window at the simulation's own pace."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise UserError(
            "no display: keyboard teleoperation needs a window",
            where="record.operator=keyboard",
            hint="run where a display exists, or use record.operator=scripted",
        )
    try:
        import tkinter

        from PIL import ImageTk
    except ImportError as exc:
        raise DependencyError(
            f"keyboard teleoperation needs tkinter and Pillow's ImageTk ({exc})", hint="install python3-tk"
        ) from None
    from apps.robots.imitation.render import render_frame

    env = BoxPushingEnv(env_config)
    team = previous if round_index > 0 and previous is not None else IdleTeam()
    robot = operated_robot(round_index, env_config.n_robots)
    recorder = EpisodeRecorder(env, robot, team, round_index, "keyboard", warmup_steps if round_index > 0 else 0)
    demos: list[Demonstration] = []
    root = tkinter.Tk()
    root.title(f"kakehashi robots: drive robot {robot} (arrows), label 1/2/3, Esc ends the episode")
    canvas = tkinter.Label(root)
    canvas.pack()
    pressed: set[str] = set()
    state = _Session()
    root.bind("<KeyPress>", lambda e: _key_down(e.keysym, pressed, state, recorder))
    root.bind("<KeyRelease>", lambda e: pressed.discard(e.keysym))

    def tick() -> None:
        if recorder.done:
            demo = recorder.demonstration()
            demos.append(demo)
            if on_episode is not None:
                on_episode(demo)
            state.seed_index += 1
            if state.seed_index >= len(seeds):
                root.destroy()
                return
            recorder.begin(seeds[state.seed_index])
        else:
            recorder.step(wheel_commands(pressed), state.label)
        labels = [-1] * env_config.n_robots
        labels[robot] = state.label
        state.photo = ImageTk.PhotoImage(render_frame(env, labels=labels))  # keep a reference, or Tk shows nothing
        canvas.configure(image=state.photo)
        root.after(round(env_config.dt * 1000), tick)

    recorder.begin(seeds[0])
    root.after(0, tick)
    root.mainloop()
    return demos


@dataclass
class _Session:
    label: int = -1
    seed_index: int = 0
    photo: Any = None


def _key_down(key: str, pressed: set[str], state: _Session, recorder: EpisodeRecorder) -> None:
    if key in _LABEL_KEYS:
        state.label = _LABEL_KEYS[key]
    elif key == "Escape":
        recorder.done = True
    else:
        pressed.add(key)


__all__ = ["record_keyboard", "wheel_commands"]
