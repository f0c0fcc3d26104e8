"""The schema of a bridge config: every key, its default, type and range, checked when the config loads.

``core/bridge/config/default.yaml`` names :class:`BridgeConfig` as its ``_schema_``, so every config extending it
(and ``kakehashi bridge ... CFG key=value``) gets these defaults and is checked before any stage runs: an unknown
key is refused with the nearest known one, a wrong type or an out-of-range value is one line naming the file and
the key. The scenario family and the samplers are ``_target_`` nodes whose arguments are checked against the
signature of the class they name (``scenarios.n_train=many`` is not an int). A model section is checked by the
same code that runs it: :func:`core.bridge.studies.study_config` turns it into the HPO config of one study, which
:mod:`core.hpo` checks (parameter ranges, the jobs node). An app's bridge with keys of its own extends
:class:`BridgeConfig` (``apps.traffic.config.schema.TrafficBridgeConfig`` adds ``score``).

Example:
    >>> from core.config import check_config
    >>> model = {"objective": "core.bridge.analytic.cheap", "params": {"xi0": [-3, 3]}}
    >>> cfg = check_config({"scenarios": {"_target_": "core.bridge.analytic.AnalyticFamily"},
    ...                     "models": {"cheap": model, "expensive": model}}, BridgeConfig, where="b.yaml")
    >>> cfg.models.expensive.n_trials, cfg.evaluate.refine, cfg.workspace
    (50, 4, 'runs/bridge/bridge')
    >>> from core.errors import ConfigError
    >>> try:
    ...     check_config({"scenarios": {"_target_": "core.bridge.analytic.AnalyticFamily", "n_train": "many"}},
    ...                  BridgeConfig, where="b.yaml")
    ... except ConfigError as error:
    ...     print(error.what, error.where, sep=" | ")
    'many' is not an int (an argument of core.bridge.analytic.AnalyticFamily) | b.yaml: scenarios.n_train
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from core.bridge.regressors import MODELS as REGRESSION_MODELS
from core.config.schema import bounds, option


def _tpe() -> dict[str, Any]:
    return {"_target_": "optuna.samplers.TPESampler", "seed": "${seed}"}


def _local() -> dict[str, Any]:
    return {"backend": "local"}


@dataclass
class ModelSchema:
    """One model's calibration: an HPO study of :mod:`core.hpo` per scenario."""

    objective: str | None = option(None, doc="dotted path of f(scenario, params) -> float, run in threads")
    command: Any = field(
        default=None,
        metadata=bounds(doc="argv template: {scenario_file}, {out_file}, {trial_number}, {<param>}, ..."),
    )
    params: dict[str, Any] = field(
        default=MISSING, metadata=bounds(doc="name: [low, high] | {type: float|int|categorical, ...} | constant")
    )
    direction: str = option("minimize", choices=["minimize"], doc="the bridge compares losses: negate a score")
    n_trials: int = option(30, ge=1, doc="the study's total per scenario")
    n_max_jobs: int = option(2, ge=1, doc="trials of one study running at once")
    sampler: Any = field(default_factory=_tpe, metadata=bounds(target=True, doc="a sampler node (_target_)"))
    method: str = option(
        "sampler",
        choices=["sampler", "gauss_newton"],
        doc="how the model's calibration studies search: sampler: n_trials runs of the sampler; gauss_newton: "
        "rounds of one probe per parameter and a Gauss–Newton step from the runs' residuals, from the centre of "
        "the ranges, n_trials runs in all (float ranges only; the objective must report user_attrs.residuals). "
        "Direct HPO on the held-out scenarios, the reference, always uses the sampler",
    )
    jobs: Any = field(
        default_factory=_local, metadata=bounds(doc="core.hpo's jobs node: backend, config, spec, kill_grace, ...")
    )

    def problems(self) -> Iterator[tuple[str, str, str | None]]:
        node: Any = self  # check_config calls this with the checked DictConfig node as self
        if OmegaConf.is_missing(node, "params"):
            return  # a base config: the config run must set the model (prepare says so)
        has_objective, has_command = node.objective is not None, node.command is not None
        if has_objective == has_command:
            words = "both objective and command" if has_objective else "neither objective nor command"
            yield "objective", f"the model has {words}", "give one: objective (a dotted path) or command (argv)"
            return
        if has_objective:
            yield from _callable_problems(str(node.objective))
        from core.bridge.studies import float_range, hpo_problems
        from core.errors import ConfigError

        yield from hpo_problems(node)
        if node.method == "gauss_newton":
            for name in node.params:
                try:
                    float_range(node.params[name], str(name))
                except ConfigError as exc:
                    yield f"params.{name}", exc.what, "or calibrate it with method: sampler"


def _expensive() -> ModelSchema:
    return ModelSchema(n_trials=50)


@dataclass
class ModelsSchema:
    """The cheap model g(ξ), calibrated on every scenario, and the expensive f(θ), on the training ones."""

    cheap: ModelSchema = field(default_factory=ModelSchema)
    expensive: ModelSchema = field(default_factory=_expensive)


@dataclass
class FitSchema:
    """How h: ξ̂ → θ̂ is fitted."""

    models: list[str] = field(default_factory=lambda: list(REGRESSION_MODELS), metadata=bounds(doc="candidates"))
    select: str = option("cv", doc="cv: the lowest cross-validated error per output; or one model name")
    prior: str = option(
        "centre",
        choices=["centre", "none"],
        doc="centre: the middle of each θ parameter's search range competes with the training mean as the anchor "
        "each output is shrunk toward (by its error on the training targets); none: the training mean only",
    )
    targets: str = option(
        "calibrated",
        choices=["calibrated", "known"],
        doc="each training scenario's θ̂ target: calibrated: found by the expensive model's study on the scenario "
        "(the offline cost); known: the parameters the scenario was simulated with (context.known_params, given "
        "by a family that makes synthetic training scenarios): no training study runs, the offline cost is the "
        "one expensive run that made each training scenario's observations",
    )
    target_top_k: int = option(
        1,
        ge=1,
        doc="each training scenario's θ̂ target: the mean of its expensive study's k best trials' parameters "
        "(1: the single best; more averages out the seed noise a best-of-n pick carries)",
    )
    cheap_loss_input: bool = option(
        False,
        doc="h's inputs: ξ̂ and, when true, the cheap calibration's best loss too (how well the cheap model fits "
        "the observations: where it fits them badly, ξ̂ says less about θ)",
    )
    feature_inputs: bool = option(
        False,
        doc="h also reads each scenario's context.features (numbers a user knows of the scenario without any "
        "model, e.g. summary statistics of its observations), as feature.<name> columns of pairs.csv",
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        node: Any = self  # the checked node
        for index, name in enumerate(node.models):
            if name not in REGRESSION_MODELS:
                yield f"models[{index}]", f"unknown regression model {name!r} (one of {', '.join(REGRESSION_MODELS)})"
        if not node.models:
            yield "models", "is empty: list at least one regression model"
        if node.select != "cv" and node.select not in REGRESSION_MODELS:
            yield "select", f"must be cv or one of {', '.join(REGRESSION_MODELS)}, not {node.select!r}"


@dataclass
class EvaluateSchema:
    """How the bridge is checked on held-out scenarios."""

    direct_reference: bool = option(True, doc="also calibrate held-out scenarios directly (the reference)")
    direct_trials: int | None = option(None, ge=1, doc="the reference's budget (null: models.expensive.n_trials)")
    direct_gauss_newton: int = option(
        0,
        ge=0,
        doc="a second reference: each held-out scenario also calibrated by Gauss–Newton rounds from the centre of "
        "the ranges with this many expensive runs (study <scenario>/direct_gauss_newton; 0: off)",
    )
    refine: int = option(4, ge=0, doc="at most this many more expensive runs from the prediction (0: off)")
    refine_full_at: float = option(0.1, gt=0, doc="all of them when the prediction's std is this share of a range")
    refine_order: str = option(
        "uncertainty",
        choices=["uncertainty", "curvature"],
        doc="which parameters the refine steps (± one std) go to first: uncertainty: the largest std as a share of "
        "the range; curvature: the largest expected loss reduction, the loss's curvature (fitted to the training "
        "scenarios' expensive studies) × (std / range)²",
    )
    refine_method: str = option(
        "pattern",
        choices=["pattern", "gauss_newton", "pooled"],
        doc="pattern: ± one std per parameter, the best run kept; gauss_newton: one probe per parameter, then a "
        "Gauss–Newton step from the runs' residuals (the expensive objective must report user_attrs.residuals; a "
        "budget of one run takes the pattern); pooled: no probes, each run an independent replicate at the point "
        "a Jacobian learned on the training scenarios puts from every run so far, the result the point it puts "
        "after the last (needs jacobian_features; README)",
    )
    jacobian_features: str | None = option(
        None,
        doc="refine_method pooled: dotted path of f(scenario) -> one row of features per residual cell (in the "
        "order of user_attrs.residuals); the Jacobian is those rows times weights fitted offline",
    )
    jacobian_samples: int = option(
        8, ge=2, doc="refine_method pooled: offline expensive runs per training scenario, around its target θ"
    )
    jacobian_spread: float = option(
        0.2, gt=0, le=0.5, doc="refine_method pooled: their standard deviation as a share of each range"
    )
    jacobian_scenarios: int | None = option(
        None,
        ge=2,
        doc="refine_method pooled: the offline runs go to the first this many training scenarios only (null: all); "
        "a large training set then costs jacobian_samples × this many runs, not × all of them",
    )
    refine_scale: str = option(
        "std",
        choices=["std", "range"],
        doc="gauss_newton's probe steps and prior: std: the prediction's std (probes kept within 10–25% of the "
        "range); range: 25% of each range, as a search from the centre takes (the prediction is then only the "
        "start)",
    )
    refine_share: float = option(
        0.25,
        gt=0,
        le=0.5,
        doc="with refine_scale: range, the share of each range the probes move, the Gauss–Newton prior is wide and "
        "the step may move at most (refine_method pooled: its prior's width and its largest move)",
    )
    refine_prior: str = option(
        "scale",
        choices=["scale", "std"],
        doc="gauss_newton's step prior: scale: as wide as the probes move (refine_scale); std: the prediction's std "
        "(h's own uncertainty, at least 2% of a range), however far the probes move",
    )
    refine_keep: str = option(
        "best",
        choices=["best", "step"],
        doc="gauss_newton's result: best: the run with the lowest loss of the check run, the probes and the step; "
        "step: the step's point (it reads every run's residuals, where a loss is one run's; the best run if the "
        "step failed)",
    )
    refine_sampler: Any = field(
        default=None, metadata=bounds(target=True, doc="null: a pattern step; or a sampler node (_target_)")
    )


@dataclass
class BridgeConfig:
    """A model-bridge pipeline (see core/bridge/README.md)."""

    name: str = option("bridge", doc="names the workspace")
    seed: int = option(0, ge=0, doc="the scenario family's and the samplers' seed")
    workspace: str = option("runs/bridge/${name}", doc="every stage reads and writes plain files here")
    scenarios: Any = field(
        default=MISSING, metadata=bounds(target=True, doc="a _target_ with a scenarios() method (train and test)")
    )
    models: ModelsSchema = field(default_factory=ModelsSchema)
    parallel_studies: int = option(2, ge=1, doc="per-scenario studies running at once")
    fit: FitSchema = field(default_factory=FitSchema)
    evaluate: EvaluateSchema = field(default_factory=EvaluateSchema)


def check_bridge_config(
    cfg: DictConfig, schema: type[BridgeConfig] = BridgeConfig, where: str = "config"
) -> DictConfig:
    """``cfg`` checked against ``schema`` (:class:`BridgeConfig` or an app's extension of it) and merged over its
    defaults, unless it was loaded with that schema (or an extension of it) already; one ``ConfigError`` line if
    not."""
    from core.config import check_config

    kind = OmegaConf.get_type(cfg)
    if isinstance(kind, type) and issubclass(kind, schema):
        return cfg
    return check_config(cfg, schema, where=where)


def _callable_problems(dotted: str) -> Iterator[tuple[str, str, str | None]]:
    from core.config import locate

    try:
        found = locate(dotted)
    except (ImportError, AttributeError) as exc:
        yield "objective", f"{dotted!r} does not import: {exc}", "check the dotted path"
        return
    if not callable(found):
        yield "objective", f"{dotted!r} is not callable", "name a function f(scenario, params) -> float"


__all__ = ["BridgeConfig", "EvaluateSchema", "FitSchema", "ModelSchema", "ModelsSchema", "check_bridge_config"]
