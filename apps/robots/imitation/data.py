"""Demonstrations as training data: padded sequences with a mask, and the Lightning DataModule of the config.

Each sample is one episode of the operated robot, or a window of one (``window > 0``): ``obs`` (T, D),
``action`` (T, 2), ``label`` (T,) (``-1``: unlabelled) and ``mask`` (T,) (``False`` on padding). The last
``val_episodes`` demonstrations (in file order) are held out for validation; with a single demonstration it
serves both.

Example:
    >>> import numpy as np
    >>> from apps.robots.imitation.demos import Demonstration
    >>> demo = Demonstration(np.zeros((5, 4), np.float32), np.zeros((5, 2), np.float32), np.zeros(5, np.int8),
    ...                      0, 0, 0, 2, 4, "scripted", {})
    >>> batch = collate_episodes([episode_sample(demo), episode_sample(demo, start=2)])
    >>> tuple(batch["obs"].shape), batch["mask"].sum().item()
    ((2, 5, 4), 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from apps.robots.imitation.demos import Demonstration, load_demonstrations
from apps.robots.imitation.env import mirror_actions, mirror_observations
from core.data.datamodule import DataModule
from core.errors import UserError


def episode_sample(demo: Demonstration, start: int = 0, length: int | None = None) -> dict[str, np.ndarray]:
    """Steps ``start : start + length`` of a demonstration as one sample."""
    stop = len(demo.obs) if length is None else min(start + length, len(demo.obs))
    return {
        "obs": demo.obs[start:stop],
        "action": demo.action[start:stop],
        "label": demo.label[start:stop].astype(np.int64),
    }


def collate_episodes(samples: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Pad samples to the longest; ``mask`` marks the real steps."""
    length = max(len(s["obs"]) for s in samples)
    n, dim = len(samples), samples[0]["obs"].shape[1]
    obs = torch.zeros(n, length, dim)
    action = torch.zeros(n, length, 2)
    label = torch.full((n, length), -1, dtype=torch.long)
    mask = torch.zeros(n, length, dtype=torch.bool)
    for i, s in enumerate(samples):
        t = len(s["obs"])
        obs[i, :t] = torch.from_numpy(s["obs"])
        action[i, :t] = torch.from_numpy(s["action"])
        label[i, :t] = torch.from_numpy(s["label"])
        mask[i, :t] = True
    return {"obs": obs, "action": action, "label": label, "mask": mask}


def mirrored(demo: Demonstration) -> Demonstration:
    """The demonstration in the mirror-image arena (see :func:`~apps.robots.imitation.env.mirror_observations`)."""
    return replace(demo, obs=mirror_observations(demo.obs, demo.n_robots), action=mirror_actions(demo.action))


def split_windows(demos: Sequence[Demonstration], window: int) -> list[dict[str, np.ndarray]]:
    """Whole episodes (``window <= 0``) or windows of ``window`` steps overlapping by half."""
    if window <= 0:
        return [episode_sample(d) for d in demos]
    out = []
    for demo in demos:
        starts = range(0, max(len(demo.obs) - window // 2, 1), max(window // 2, 1))
        out += [episode_sample(demo, start, window) for start in starts]
    return out


class DemoDataModule(DataModule):
    """The demonstration files of a config as train / val sets.

    Args:
        paths: Demonstration files (``kakehashi robots record``), one or a list.
        n_robots: The team size the policy is for; files recorded for another are refused.
        val_episodes: Demonstrations held out for validation (the last ones).
        window: Steps per training sample; 0 trains on whole episodes.
        mirror: Add each training demonstration's mirror image (the arena is symmetric).
        batch_size: Samples per batch.
    """

    def __init__(
        self,
        paths: str | Sequence[str],
        n_robots: int,
        val_episodes: int = 1,
        window: int = 0,
        mirror: bool = True,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, collate_fn=collate_episodes)
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        self.n_robots = n_robots
        self.val_episodes = val_episodes
        self.window = window
        self.mirror = mirror

    def setup(self, stage: str) -> None:
        if self.train_dataset is not None:
            return
        # a later round's episode can end during the warm-up (the previous team stored every box): nothing to learn
        demos = [d for d in load_demonstrations(self.paths, n_robots=self.n_robots) if len(d.obs)]
        if not demos:
            raise UserError("every demonstration is empty", where=", ".join(self.paths), hint="record more episodes")
        n_val = min(self.val_episodes, len(demos) - 1) if len(demos) > 1 else 0
        train, val = (demos[: len(demos) - n_val], demos[len(demos) - n_val :]) if n_val else (demos, demos)
        self.demonstrations = demos
        if self.mirror:
            train = list(train) + [mirrored(d) for d in train]
        self.train_dataset = split_windows(train, self.window)
        self.val_dataset = [episode_sample(d) for d in val]


__all__ = ["DemoDataModule", "collate_episodes", "episode_sample", "mirrored", "split_windows"]
