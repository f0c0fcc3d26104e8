"""Evaluation episodes: a team controller on every robot, boxes stored per episode, success, and the gate's NMI.

A *policy spec* names what drives the team: ``"expert"`` (the scripted operator on every robot), ``"random"``,
or the run directory of a trained policy (its weights copied to every robot). A policy trained for another team
size is refused with a :class:`~core.errors.UserError`.

Episodes can run in this process (:func:`evaluate_policy`) or as an array of jobs on any ``core.jobs`` backend
(:func:`evaluate_as_jobs`): each array element runs its share of the seeds (``core.jobs.split_tasks``) through
``python -m apps.robots.imitation.evaluation REQUEST.json`` and writes one ``episode-<seed>.json`` per episode.

Example:
    >>> from apps.robots.imitation.env import EnvConfig
    >>> config = EnvConfig(n_robots=2, n_boxes=2, max_steps=30)
    >>> results = evaluate_policy("random", config, seeds=[0, 1])
    >>> [r.seed for r in results], summarize(results)["episodes"]
    ([0, 1], 2)
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.robots.imitation.env import BoxPushingEnv, EnvConfig
from apps.robots.imitation.team import ExpertTeam, PolicyTeam, RandomTeam, TeamController
from core.errors import UserError
from core.files import write_atomic

log = logging.getLogger(__name__)


@dataclass
class EpisodeResult:
    seed: int
    boxes_stored: int
    n_boxes: int
    steps: int
    success: bool


def load_policy(run_dir: str | Path, n_robots: int) -> Any:
    """The policy network of a ``train-imitation`` run, checked against the team size: the weights of the last
    epoch, or of the monitored best checkpoint where a config keeps one (the bundled config does not)."""
    from core.train import load_run, load_run_config

    cfg = load_run_config(run_dir)
    trained_for = cfg.get("task", {}).get("n_robots")
    if trained_for is None:
        raise UserError(
            "not an imitation run (no task.n_robots)",
            where=str(run_dir),
            hint="give the run directory of `kakehashi robots train-imitation`",
        )
    if int(trained_for) != n_robots:
        raise UserError(
            f"the policy was trained for {trained_for} robots, the environment has {n_robots}",
            where=str(run_dir),
            hint=f"set env.n_robots={trained_for} or train a policy for {n_robots} robots",
        )
    from core.train import resolve_checkpoint

    try:
        resolve_checkpoint(run_dir, "best")
        which = "best"
    except UserError:  # no validation ran (a very short run): the last epoch's weights
        which = "last"
    task = load_run(run_dir, which)
    model = task.model
    model.eval()
    return model


def make_team(policy: str, config: EnvConfig, seed: int = 0) -> TeamController:
    """The team controller a policy spec names (see the module docstring)."""
    if policy == "expert":
        return ExpertTeam(config, seed=seed)
    if policy == "random":
        return RandomTeam(seed=seed)
    if not Path(policy).is_dir():
        raise UserError(
            f"unknown policy {policy!r}",
            where="evaluate.policy",
            hint="expert, random or the run directory of a trained policy",
        )
    return PolicyTeam(load_policy(policy, config.n_robots))


def run_episode(
    env: BoxPushingEnv,
    team: TeamController,
    seed: int,
    on_frame: Callable[[BoxPushingEnv, np.ndarray], None] | None = None,
) -> EpisodeResult:
    """One episode from ``reset(seed)`` to its end; ``on_frame(env, behaviours)`` after the reset and each step."""
    obs, _ = env.reset(seed=seed)
    team.reset(env.config.n_robots)
    if on_frame is not None:
        on_frame(env, np.full(env.config.n_robots, -1))
    done = False
    terminated = False
    while not done:
        actions, behaviours = team.act(obs)
        obs, _, terminated, truncated, _ = env.step(actions)
        done = terminated or truncated
        if on_frame is not None:
            on_frame(env, behaviours)
    return EpisodeResult(seed, env.boxes_stored, env.config.n_boxes, env.steps, bool(terminated))


def evaluate_policy(
    policy: str | TeamController,
    config: EnvConfig,
    seeds: Sequence[int],
    gif: str | Path | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Run one episode per seed in this process. ``gif``: an animated GIF of the first episode."""
    from apps.robots.imitation.render import render_frame, save_gif

    env = BoxPushingEnv(config)
    results = []
    fixed = None if isinstance(policy, str) and policy in ("expert", "random") else policy
    if isinstance(fixed, str):
        fixed = make_team(fixed, config)  # load the weights once
    for n, seed in enumerate(seeds):
        team = fixed if fixed is not None else make_team(str(policy), config, seed)
        if gif and n == 0:
            frames: list[Any] = []

            def draw(e: BoxPushingEnv, behaviours: np.ndarray, frames: list[Any] = frames) -> None:
                frames.append(render_frame(e, labels=list(behaviours)))

            result = run_episode(env, team, seed, draw)
            save_gif(frames, gif)
        else:
            result = run_episode(env, team, seed)
        results.append(result)
        if on_episode is not None:
            on_episode(result)
    return results


def summarize(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """Mean boxes stored per episode (and its standard error), success rate, mean episode length.

    Example:
        >>> summarize([EpisodeResult(0, 4, 4, 100, True), EpisodeResult(1, 2, 4, 300, False)])["boxes_mean"]
        3.0
    """
    boxes = np.array([r.boxes_stored for r in results], float)
    return {
        "episodes": len(results),
        "boxes_mean": float(boxes.mean()),
        "boxes_sem": float(boxes.std(ddof=1) / np.sqrt(len(boxes))) if len(boxes) > 1 else 0.0,
        "success_rate": float(np.mean([r.success for r in results])),
        "steps_mean": float(np.mean([r.steps for r in results])),
    }


def gate_choices(model: Any, observations: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The gate's argmax at every step of each observation sequence (one robot's episode)."""
    import torch

    out = []
    with torch.inference_mode():
        for obs in observations:
            result = model(torch.from_numpy(np.asarray(obs, np.float32)).unsqueeze(0))
            if result.gate_logits is None:
                raise UserError("the policy has no gate", hint="gate_nmi needs a mixture-of-experts policy")
            out.append(result.gate_logits[0].argmax(-1).numpy())
    return out


def gate_nmi(model: Any, observations: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> float:
    """Normalized mutual information (scikit-learn's, arithmetic mean) of the gate's choice and the labels."""
    from sklearn.metrics import normalized_mutual_info_score

    choices = np.concatenate(gate_choices(model, observations))
    truth = np.concatenate([np.asarray(label) for label in labels])
    keep = truth >= 0
    return float(normalized_mutual_info_score(truth[keep], choices[keep]))


def expert_episodes(config: EnvConfig, seeds: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every robot's observations and behaviour labels in episodes of the scripted team (for :func:`gate_nmi`)."""
    env = BoxPushingEnv(config)
    observations: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for seed in seeds:
        team = ExpertTeam(config, seed=seed)
        obs, _ = env.reset(seed=seed)
        team.reset(config.n_robots)
        steps_obs, steps_labels = [], []
        done = False
        while not done:
            actions, behaviours = team.act(obs)
            steps_obs.append(obs)
            steps_labels.append(behaviours)
            obs, _, terminated, truncated, _ = env.step(actions)
            done = terminated or truncated
        stacked_obs, stacked_labels = np.stack(steps_obs, 1), np.stack(steps_labels, 1)  # (robots, T, ...)
        observations += list(stacked_obs)
        labels += list(stacked_labels)
    return observations, labels


# ---------------------------------------------------------------------------------------------- array of jobs
def evaluate_as_jobs(
    policy: str,
    config: EnvConfig,
    seeds: Sequence[int],
    work_dir: str | Path,
    backend: str = "local",
    backend_config: str | None = None,
    episodes_per_task: int = 10,
    timeout: float | None = None,
) -> list[EpisodeResult]:
    """Run the episodes as one array job on a ``core.jobs`` backend; return the results in seed order."""
    from core.jobs import JobSpec, get_backend
    from core.jobs.base import JobState

    folder = Path(work_dir).resolve()
    (folder / "episodes").mkdir(parents=True, exist_ok=True)
    policy_arg = policy if policy in ("expert", "random") else str(Path(policy).resolve())
    request = {"policy": policy_arg, "env": config.to_dict(), "seeds": list(seeds), "out": str(folder / "episodes")}
    write_atomic(folder / "request.json", json.dumps(request, indent=2))
    spec = JobSpec(
        [sys.executable, "-m", "apps.robots.imitation.evaluation", str(folder / "request.json")],
        name="robots-evaluate",
        log_path=folder / "logs" / "evaluate.log",
        n_tasks=len(seeds),
        n_tasks_per_proc=max(1, episodes_per_task),
        cwd=Path.cwd(),
    )
    runner = get_backend(backend, backend_config)
    handle = runner.submit(spec)
    (status,) = runner.wait([handle], timeout=timeout)
    if status.state != JobState.COMPLETED:
        failed = [t for t in status.tasks if t.state != JobState.COMPLETED]
        where = f"job {handle.job_id}" + (f", element {failed[0].index}, log {failed[0].log_path}" if failed else "")
        raise UserError(f"evaluation job ended {status.state.value}", where=where, hint="read the element's log")
    results = []
    for seed in seeds:
        path = folder / "episodes" / f"episode-{seed}.json"
        if not path.is_file():
            raise UserError("an episode's result is missing", where=str(path), hint="read the job's logs")
        results.append(EpisodeResult(**json.loads(path.read_text())))
    return results


def run_request(request_path: str | Path) -> int:
    """One array element: run this element's share of the request's seeds; one JSON file per episode."""
    import torch

    from core.jobs import split_tasks

    torch.set_num_threads(1)
    request = json.loads(Path(request_path).read_text())
    config = EnvConfig.from_dict(request["env"])
    mine = split_tasks(request["seeds"])
    out = Path(request["out"])

    def save(result: EpisodeResult) -> None:
        write_atomic(out / f"episode-{result.seed}.json", json.dumps(asdict(result)))

    evaluate_policy(request["policy"], config, mine, on_episode=save)
    log.info("evaluated seeds %s", mine)
    return 0


if __name__ == "__main__":  # an array element of evaluate_as_jobs
    try:
        sys.exit(run_request(sys.argv[1]))
    except UserError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        sys.exit(exc.exit_code)


__all__ = [
    "EpisodeResult",
    "evaluate_as_jobs",
    "evaluate_policy",
    "expert_episodes",
    "gate_choices",
    "gate_nmi",
    "load_policy",
    "make_team",
    "run_episode",
    "run_request",
    "summarize",
]
