"""The three steps of a config, as functions: record demonstrations, train a policy (core.train), evaluate it;
and the rounds protocol that chains them.

One YAML file (``apps/robots/imitation/config/imitation.yaml``) holds ``env``, ``record``, the core.train keys
(``trainer``, ``callbacks``, ``task``, ``datamodule``) and ``evaluate``. The CLI verbs are thin wrappers around
these functions.

Example:
    >>> import tempfile
    >>> from core.config import load_config
    >>> folder = tempfile.mkdtemp()
    >>> cfg = load_config(CONFIG, [f"record.out={folder}/demos.h5", "record.episodes=1", "env.max_steps=20"])
    >>> path, demos = record(cfg)
    >>> len(demos), path.name
    (1, 'demos.h5')
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from apps.robots.imitation.demos import Demonstration, load_demonstrations, record_round, write_demonstrations
from apps.robots.imitation.env import EnvConfig
from apps.robots.imitation.evaluation import (
    EpisodeResult,
    evaluate_as_jobs,
    evaluate_policy,
    load_policy,
    summarize,
)
from apps.robots.imitation.team import PolicyTeam
from core.config import as_dict
from core.errors import ConfigError, UserError
from core.files import write_atomic

CONFIG = Path(__file__).with_name("config") / "imitation.yaml"
RECORD_KEYS = {"operator", "round", "policy", "episodes", "first_seed", "warmup_steps", "noise", "labels", "out"}
EVALUATE_KEYS = {"policy", "episodes", "first_seed", "out", "gif", "backend", "backend_config", "episodes_per_task"}

log = logging.getLogger(__name__)


def _at_least_one(options: dict[str, Any], node: str, *keys: str) -> None:
    """Counts (episodes, ...) are whole numbers of at least 1: anything else is one ConfigError line."""
    for key in keys:
        value = options.get(key)
        if value is None:
            continue
        try:
            count = int(value)
        except (TypeError, ValueError):
            count = 0
        if count < 1 or count != value:
            raise ConfigError(f"{key} must be a whole number of at least 1, not {value!r}", where=f"{node}.{key}")


def section(cfg: DictConfig, name: str, known: set[str]) -> dict[str, Any]:
    """``cfg[name]`` as a dict; a key outside ``known`` (a typo) is a ConfigError."""
    node = OmegaConf.select(cfg, name)
    if node is None:
        raise ConfigError(f"no `{name}` node", where=name, hint=f"see {CONFIG.name}")
    values = as_dict(node, where=name, hint=f"see {CONFIG.name}")
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}", where=name, hint=f"known keys: {sorted(known)}")
    return values


def env_config(cfg: DictConfig) -> EnvConfig:
    """The ``env`` node as an :class:`~apps.robots.imitation.env.EnvConfig`."""
    node = OmegaConf.select(cfg, "env")
    return EnvConfig.from_dict(as_dict(node, where="env", hint=f"see {CONFIG.name}") if node is not None else {})


def demonstration_seeds(first_seed: int, round_index: int, episodes: int) -> list[int]:
    """Environment seeds of a round's demonstrations: ``first_seed + 100 * round + i``.

    Example:
        >>> demonstration_seeds(1000, 1, 3)
        [1100, 1101, 1102]
    """
    return [first_seed + 100 * round_index + i for i in range(episodes)]


def record(
    cfg: DictConfig, on_episode: Callable[[Demonstration], None] | None = None
) -> tuple[Path, list[Demonstration]]:
    """Record the demonstrations of ``record`` (one round) and write them to ``record.out``."""
    env = env_config(cfg)
    options = section(cfg, "record", RECORD_KEYS)
    round_index = int(options["round"])
    if round_index < 0:
        raise ConfigError("the round must be 0 or more", where="record.round")
    previous = None
    if round_index > 0:
        if not options.get("policy"):
            raise ConfigError(
                f"round {round_index} needs the previous round's policy",
                where="record.policy",
                hint="record.policy=<run directory of the previous round's train-imitation>",
            )
        previous = PolicyTeam(load_policy(options["policy"], env.n_robots))
    _at_least_one(options, "record", "episodes")
    seeds = demonstration_seeds(int(options["first_seed"]), round_index, int(options["episodes"]))
    operator = options["operator"]
    if operator == "scripted":
        demos = record_round(
            env,
            round_index,
            seeds,
            previous,
            int(options["warmup_steps"]),
            float(options["noise"]),
            bool(options["labels"]),
            on_episode,
        )
    elif operator == "keyboard":
        from apps.robots.imitation.teleop import record_keyboard

        demos = record_keyboard(env, round_index, seeds, previous, int(options["warmup_steps"]), on_episode)
    else:
        raise ConfigError(f"unknown operator {operator!r}", where="record.operator", hint="scripted or keyboard")
    out = Path(options["out"])
    write_demonstrations(demos, out)
    return out, demos


def train(config: str | Path, overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> Any:
    """``core.train.fit`` of the config, after checking its demonstration files (format, team size)."""
    from core.config import load_config
    from core.train import fit

    cfg = load_config(config, overrides)
    paths = OmegaConf.select(cfg, "datamodule.paths")
    if paths is not None:
        listed = [paths] if isinstance(paths, str) else list(paths)
        load_demonstrations(listed, n_robots=env_config(cfg).n_robots)
    return fit(config, overrides, run_dir=run_dir)


def trained_seeds(run_dir: str | Path) -> set[int]:
    """The environment seeds of the demonstrations a run was trained on (those files that still exist)."""
    from core.train import load_run_config

    cfg = load_run_config(run_dir)
    paths = OmegaConf.select(cfg, "datamodule.paths") or []
    listed = [paths] if isinstance(paths, str) else list(paths)
    return {d.seed for d in load_demonstrations([p for p in listed if Path(p).is_file()])} if listed else set()


def evaluate(cfg: DictConfig, on_episode: Callable[[EpisodeResult], None] | None = None) -> dict[str, Any]:
    """Run ``evaluate``'s episodes (here or as an array of jobs); write and return the summary and episodes."""
    env = env_config(cfg)
    options = section(cfg, "evaluate", EVALUATE_KEYS)
    _at_least_one(options, "evaluate", "episodes", "episodes_per_task")
    policy = str(options["policy"])
    seeds = list(range(int(options["first_seed"]), int(options["first_seed"]) + int(options["episodes"])))
    if policy not in ("expert", "random"):
        if not Path(policy).is_dir():
            raise UserError(
                "policy run directory not found",
                where=f"evaluate.policy={policy}",
                hint="expert, random, or the --run-dir of train-imitation",
            )
        load_policy(policy, env.n_robots)  # refuse another team size before anything runs
        overlap = sorted(trained_seeds(policy) & set(seeds))
        if overlap:
            raise ConfigError(
                f"evaluation seeds {overlap[:5]} were demonstration seeds",
                where="evaluate.first_seed",
                hint="evaluate on seeds the policy never saw",
            )
    out = options.get("out") or (
        Path(policy) / "results" / "evaluate.json"
        if Path(policy).is_dir()
        else Path("runs/robots") / f"evaluate-{policy}.json"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if options.get("backend"):
        results = evaluate_as_jobs(
            policy,
            env,
            seeds,
            out.with_suffix(".jobs"),
            options["backend"],
            options.get("backend_config"),
            int(options["episodes_per_task"]),
        )
        if on_episode is not None:
            for result in results:
                on_episode(result)
        if options.get("gif"):  # the array's elements draw nothing: replay the first episode here
            evaluate_policy(policy, env, seeds[:1], gif=options["gif"])
    else:
        results = evaluate_policy(policy, env, seeds, gif=options.get("gif"), on_episode=on_episode)
    report = {
        "policy": policy,
        "env": env.to_dict(),
        **summarize(results),
        "episodes_detail": [asdict(r) for r in results],
    }
    write_atomic(out, json.dumps(report, indent=2) + "\n")
    report["out"] = str(out)
    return report


def run_rounds(
    config: str | Path,
    overrides: Sequence[str],
    work_dir: str | Path,
    episodes_per_round: Sequence[int] = (5, 5),
    train_overrides: Sequence[str] = (),
) -> list[Path]:
    """The rounds protocol: record round 0, train, record round 1 among copies of that policy, train on all
    demonstrations so far, ... Returns the run directory of each round's policy (the last one is the team's)."""
    from core.config import load_config

    folder = Path(work_dir)
    files: list[str] = []
    runs: list[Path] = []
    for round_index, episodes in enumerate(episodes_per_round):
        demo_file = folder / f"demos-round{round_index}.h5"
        extra = [f"record.round={round_index}", f"record.episodes={episodes}", f"record.out={demo_file}"]
        if runs:
            extra.append(f"record.policy={runs[-1]}")
        record(load_config(config, [*overrides, *extra]))
        files.append(str(demo_file))
        run_dir = folder / f"round{round_index}"
        paths = "datamodule.paths=[" + ",".join(f"'{f}'" for f in files) + "]"
        train(config, [*overrides, *train_overrides, paths], run_dir=run_dir)
        runs.append(run_dir)
        log.info(
            "round %d: %d demonstrations in all, policy %s",
            round_index,
            sum(episodes_per_round[: round_index + 1]),
            run_dir,
        )
    return runs


__all__ = [
    "CONFIG",
    "demonstration_seeds",
    "env_config",
    "evaluate",
    "record",
    "run_rounds",
    "section",
    "train",
    "trained_seeds",
]
