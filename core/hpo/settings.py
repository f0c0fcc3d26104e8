"""An HPO config, merged over the bundled defaults and checked once, before anything runs.

Example:
    >>> cfg = load_hpo_config({"params": {"x": [0, 1]}, "command": "python f.py {x}", "n_trials": 5})
    >>> settings = HpoSettings.from_config(cfg)
    >>> settings.n_trials, settings.directions, settings.command
    (5, ['minimize'], ['python', 'f.py', '{x}'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.hpo.command import parse_command
from core.hpo.params import ParamSpec, parse_params

DIRECTIONS = ("minimize", "maximize")


def default_config_path() -> Path:
    """The bundled defaults (``${pkg:core.hpo.config}/default.yaml``)."""
    return Path(__file__).with_name("config") / "default.yaml"


def load_hpo_config(config: str | Path | Mapping[str, Any] | DictConfig, overrides: Sequence[str] = ()) -> DictConfig:
    """A config file, dict or ``DictConfig`` merged over the defaults (a file that already extends them is the
    same), with ``overrides`` applied."""
    from core.config import apply_overrides, as_dict, load_config
    from core.config.loader import validate

    defaults = load_config(default_config_path())
    if isinstance(config, str | Path):
        user, where = load_config(config), str(config)
    else:
        user, where = (config if isinstance(config, DictConfig) else OmegaConf.create(dict(config))), "config"
    merged = OmegaConf.merge(defaults, user)
    for key in ("study.sampler", "study.pruner"):  # a node with its own _target_ replaces the default node
        node = OmegaConf.select(user, key)
        if isinstance(node, DictConfig) and "_target_" in node:
            OmegaConf.update(merged, key, node, merge=False)
    if overrides:
        merged = OmegaConf.create(apply_overrides(as_dict(merged, where=where, resolve=False), overrides, where))
    assert isinstance(merged, DictConfig)
    validate(merged, where)
    check_keys(merged, defaults, where)
    return merged


# nodes whose keys are the user's own (parameters, constructor arguments, job fields), not the runner's settings
_FREE_NODES = ("params", "objective", "enqueue", "study.sampler", "study.pruner", "jobs.config", "jobs.spec")
_EXTRA_KEYS = {"": ("_base_",)}


def check_keys(cfg: DictConfig, defaults: DictConfig, where: str) -> None:
    """Refuse keys the runner does not know (``n_trails``), naming the nearest known one.

    Example:
        >>> check_keys(OmegaConf.create({"n_trails": 3}), OmegaConf.create({"n_trials": 20}), "c.yaml")
        Traceback (most recent call last):
        ...
        core.errors.ConfigError: unknown key 'n_trails' (c.yaml: n_trails) — did you mean n_trials?
    """
    import difflib

    def walk(node: Any, known: Any, path: str) -> None:
        if path in _FREE_NODES or not isinstance(node, DictConfig) or not isinstance(known, DictConfig):
            return
        allowed = [str(k) for k in known] + list(_EXTRA_KEYS.get(path, ()))
        for key in node:
            key = str(key)
            child = f"{path}.{key}" if path else key
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]}?" if close else f"known keys here: {', '.join(sorted(allowed))}"
                raise ConfigError(f"unknown key {key!r}", where=f"{where}: {child}", hint=hint)
            walk(node._get_node(key), known._get_node(key), child)

    walk(cfg, defaults, "")


@dataclass
class HpoSettings:
    """The checked values of an HPO config (the nodes that ``instantiate`` builds stay in ``cfg``)."""

    study_name: str
    storage: Any
    directions: list[str]
    metric_names: list[str] | None
    load_if_exists: bool
    run_dir: Path
    space: list[ParamSpec]
    command: list[str] | None
    n_trials: int
    n_max_jobs: int
    timeout_per_trial: float | None
    max_retries: int
    retry_lost: bool
    wait_for_others: bool
    enqueue: list[dict[str, Any]]
    backend: str
    backend_config: Any
    job_spec: dict[str, Any]
    poll_interval: float
    kill_grace: float
    cwd: Path | None
    heartbeat_interval: float
    grace: float
    plots: bool
    cfg: DictConfig = field(repr=False)

    @classmethod
    def from_config(
        cls, cfg: DictConfig, run_dir: str | Path | None = None, has_objective: bool = False
    ) -> HpoSettings:
        """Check ``cfg``; ``has_objective``: a Python callable is given apart from the config."""
        from core.config import as_dict

        data = as_dict(cfg, where="config")
        study = _mapping(data.get("study"), "study")
        directions = study.get("directions") or ["minimize"]
        if isinstance(directions, str):
            directions = [directions]
        for i, d in enumerate(directions):
            if d not in DIRECTIONS:
                raise ConfigError(f"unknown direction {d!r}", where=f"study.directions[{i}]", hint="minimize|maximize")
        metric_names = study.get("metric_names")
        if metric_names is not None and len(metric_names) != len(directions):
            raise ConfigError("one metric name per direction", where="study.metric_names")
        command = None if data.get("command") is None else parse_command(cfg.command)
        if command is None and data.get("objective") is None and not has_objective:
            raise ConfigError(
                "nothing to optimize: set command (an argv template) or objective (a Python callable)",
                where="config",
                hint="e.g. command: [python, objective.py, '{x}', '{out_file}'] or `-- CMD ...` on the command line",
            )
        jobs = _mapping(data.get("jobs"), "jobs")
        liveness = _mapping(data.get("liveness"), "liveness")
        backend = str(jobs.get("backend") or "local")
        poll = jobs.get("poll_interval")
        enqueue = data.get("enqueue") or []
        if not isinstance(enqueue, list) or not all(isinstance(p, dict) for p in enqueue):
            raise ConfigError("enqueue must be a list of {name: value} mappings", where="enqueue")
        spec = _mapping(jobs.get("spec"), "jobs.spec")
        settings = cls(
            study_name=str(study.get("name") or "hpo"),
            storage=study.get("storage"),
            directions=list(directions),
            metric_names=None if metric_names is None else [str(m) for m in metric_names],
            load_if_exists=bool(study.get("load_if_exists", True)),
            run_dir=Path(run_dir if run_dir is not None else data.get("run_dir") or "runs/hpo"),
            space=parse_params(cfg.get("params")),
            command=command,
            n_trials=_integer(data.get("n_trials"), "n_trials", minimum=0),
            n_max_jobs=_integer(data.get("n_max_jobs"), "n_max_jobs", minimum=1),
            timeout_per_trial=_seconds(data.get("timeout_per_trial"), "timeout_per_trial"),
            max_retries=_integer(data.get("max_retries", 0), "max_retries", minimum=0),
            retry_lost=bool(data.get("retry_lost", True)),
            wait_for_others=bool(data.get("wait_for_others", True)),
            enqueue=[dict(p) for p in enqueue],
            backend=backend,
            backend_config=cfg.jobs.get("config"),
            job_spec=spec,
            poll_interval=_seconds(poll, "jobs.poll_interval") or (1.0 if backend == "local" else 5.0),
            kill_grace=_seconds(jobs.get("kill_grace", 5), "jobs.kill_grace") or 5.0,
            cwd=None if jobs.get("cwd") is None else Path(jobs["cwd"]),
            heartbeat_interval=_seconds(liveness.get("heartbeat_interval", 10), "liveness.heartbeat_interval") or 10,
            grace=_seconds(liveness.get("grace", 60), "liveness.grace") or 60,
            plots=bool(data.get("plots", True)),
            cfg=cfg,
        )
        if settings.grace <= settings.heartbeat_interval:
            raise ConfigError(
                "liveness.grace must exceed liveness.heartbeat_interval", where="liveness", hint="e.g. 6× of it"
            )
        specs = {p.name: p for p in settings.space}
        for i, point in enumerate(settings.enqueue):
            unknown = sorted(set(point) - set(specs))
            if unknown:
                raise ConfigError(f"enqueued point names unknown parameter {unknown[0]!r}", where=f"enqueue[{i}]")
            for name, value in point.items():
                problem = specs[name].rejects(value)
                if problem:
                    raise ConfigError(f"enqueued value {value!r} {problem}", where=f"enqueue[{i}].{name}")
        return settings


def _mapping(value: Any, where: str) -> dict[str, Any]:
    from core.config import as_dict

    return {} if value is None else as_dict(value, where=where)


def _integer(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer ≥ {minimum}, not {value!r}", where=where)
    return value


def _seconds(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"must be a positive number of seconds, not {value!r}", where=where)
    return float(value)
