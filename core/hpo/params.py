"""The search space of a study: the ``params`` node of an HPO config, parsed once and checked.

Forms, per parameter name::

    lr: [1.0e-4, 1.0e-1]                                  # short form: a float in [low, high] (see below)
    lr: {type: float, low: 1.0e-4, high: 0.1, log: true}  # also step
    layers: {type: int, low: 1, high: 8, step: 1}        # also log
    act: {type: categorical, choices: [relu, gelu]}
    epochs: 10                                            # a constant, or {type: const, value: 10}
    x: {_target_: aiaccel.hpo.optuna.hparams.Float, low: 0, high: 1}  # any callable(trial, name)

A YAML list is always the short form of a *float* range, never a list of choices: it must hold exactly two
finite numbers with low < high, and ``[16, 32]`` is every float between 16 and 32 (not the two batch sizes, nor
the integers). Any other list (``[relu, gelu]``, ``[16, 32, 64]``, ``[true, false]``) is refused, naming the
explicit forms, rather than guessed at.

Example:
    >>> import optuna
    >>> space = parse_params({"x": [0, 1], "n": {"type": "int", "low": 1, "high": 3}, "tag": "a b"})
    >>> [p.kind for p in space]
    ['float', 'int', 'const']
    >>> trial = optuna.create_study().ask()
    >>> values = suggest(trial, space)
    >>> 0 <= values["x"] <= 1 and values["n"] in (1, 2, 3) and values["tag"]
    'a b'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError

if TYPE_CHECKING:
    import optuna

Scalar = None | bool | int | float | str
_KINDS = ("float", "int", "categorical", "const")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of the search space."""

    name: str
    kind: str  # float | int | categorical | const | callable
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Scalar, ...] = ()
    value: Any = None
    sampler: Callable[[Any, str], Any] | None = None  # for kind "callable"

    def rejects(self, value: Any) -> str | None:
        """Why ``value`` is not a value of this parameter (None: it is), e.g. for an enqueued point."""
        if self.kind in ("float", "int"):
            assert self.low is not None and self.high is not None
            if not _is_number(value) or not math.isfinite(value):
                return f"is not a number for the {self.kind} parameter"
            if self.kind == "int" and not float(value).is_integer():
                return "is not an integer"
            if not self.low <= value <= self.high:
                return f"is outside the range [{self.low}, {self.high}]"
        elif self.kind == "categorical" and value not in self.choices:
            return f"is not one of the choices {list(self.choices)}"
        return None

    def suggest(self, trial: optuna.Trial) -> Any:
        """The value of this parameter for ``trial`` (fixed values of an enqueued trial win, as in Optuna)."""
        if self.kind == "float":
            assert self.low is not None and self.high is not None
            return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        if self.kind == "int":
            assert self.low is not None and self.high is not None
            step = 1 if self.step is None else int(self.step)
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=step, log=self.log)
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "callable":
            assert self.sampler is not None
            return self.sampler(trial, self.name)
        return self.value


def distributions(space: Sequence[ParamSpec]) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions of the float, int and categorical parameters (for samplers that take a search space)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for spec in space:
        if spec.kind == "float":
            assert spec.low is not None and spec.high is not None
            out[spec.name] = FloatDistribution(spec.low, spec.high, step=spec.step, log=spec.log)
        elif spec.kind == "int":
            assert spec.low is not None and spec.high is not None
            step = 1 if spec.step is None else int(spec.step)
            out[spec.name] = IntDistribution(int(spec.low), int(spec.high), step=step, log=spec.log)
        elif spec.kind == "categorical":
            out[spec.name] = CategoricalDistribution(list(spec.choices))
    return out


def parse_params(node: Any, where: str = "params") -> list[ParamSpec]:
    """Parse a ``params`` mapping (a dict or an OmegaConf node) into specs; a mistake is a ``ConfigError``."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if node is None:
        return []
    raw = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node
    if not isinstance(raw, Mapping):
        raise ConfigError("params must be a mapping of name to range", where=where, hint="e.g. params: {x: [0, 1]}")
    specs = []
    for name, definition in raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(
                f"parameter name {name!r} is not an identifier",
                where=where,
                hint="use letters, digits and _ (it becomes a {placeholder})",
            )
        specs.append(_parse_one(name, definition, f"{where}.{name}"))
    return specs


def suggest(trial: optuna.Trial, space: Sequence[ParamSpec]) -> dict[str, Any]:
    """Suggest every parameter of ``space`` for ``trial``; returns name → value (constants included)."""
    return {spec.name: spec.suggest(trial) for spec in space}


def _parse_one(name: str, definition: Any, where: str) -> ParamSpec:
    if isinstance(definition, list | tuple):
        if len(definition) != 2 or not all(_is_number(v) for v in definition):
            shown = ", ".join(map(str, definition[:4])) + (", ..." if len(definition) > 4 else "")
            raise ConfigError(
                f"a list is the short form of a float range [low, high] with two finite numbers, not [{shown}]",
                where=where,
                hint="choices: {type: categorical, choices: [...]}; integers: {type: int, low: .., high: ..}",
            )
        return _numeric(name, "float", {"low": definition[0], "high": definition[1]}, where)
    if isinstance(definition, Mapping):
        if "_target_" in definition:
            from core.config import instantiate

            sampler = instantiate(dict(definition))
            if not callable(sampler):
                raise ConfigError("a parameter _target_ must build a callable(trial, name)", where=where)
            return ParamSpec(name, "callable", sampler=sampler)
        kind = definition.get("type", "float" if "low" in definition else None)
        if kind is None and "choices" in definition:
            kind = "categorical"
        if kind is None and "value" in definition:
            kind = "const"
        if kind not in _KINDS:
            raise ConfigError(
                f"unknown parameter type {kind!r}", where=where, hint=f"type is one of {', '.join(_KINDS)}"
            )
        if kind in ("float", "int"):
            return _numeric(name, kind, definition, where)
        if kind == "categorical":
            choices = definition.get("choices")
            if not isinstance(choices, list | tuple) or not choices:
                raise ConfigError("a categorical parameter needs a non-empty list of choices", where=where)
            if not all(c is None or isinstance(c, bool | int | float | str) for c in choices):
                raise ConfigError("categorical choices must be None, bool, int, float or str", where=where)
            _check_keys(definition, {"type", "choices"}, where)
            return ParamSpec(name, "categorical", choices=tuple(choices))
        _check_keys(definition, {"type", "value"}, where)
        return ParamSpec(name, "const", value=definition.get("value"))
    return ParamSpec(name, "const", value=definition)


def _numeric(name: str, kind: str, definition: Mapping[str, Any], where: str) -> ParamSpec:
    _check_keys(definition, {"type", "low", "high", "step", "log"}, where)
    low, high, step = definition.get("low"), definition.get("high"), definition.get("step")
    log = definition.get("log", False)
    if low is None or high is None or not _is_number(low) or not _is_number(high):
        raise ConfigError(f"a {kind} parameter needs finite numeric low and high", where=where)
    if low >= high:
        what = "equals" if low == high else "is above"
        raise ConfigError(f"low ({low}) {what} high ({high})", where=where, hint="for a fixed value write NAME: VALUE")
    if step is not None and (not _is_number(step) or step <= 0):
        raise ConfigError("step must be a positive number", where=where)
    if not isinstance(log, bool):
        raise ConfigError("log must be true or false", where=where)
    if log and low <= 0:
        raise ConfigError("a log-scale range needs low > 0", where=where)
    if log and step is not None and kind == "float":
        raise ConfigError("step and log cannot be combined for a float", where=where)
    if kind == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise ConfigError("an int parameter needs integer low, high and step", where=where)
    return ParamSpec(name, kind, low=low, high=high, step=step, log=log)


def _check_keys(definition: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(definition) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} for this parameter type", where=where, hint=f"allowed: {sorted(allowed)}"
        )


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool, NaN or infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
