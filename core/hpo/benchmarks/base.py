"""The benchmark protocol: a search space, fidelity levels, and ``evaluate(params, fidelity) -> values, runtime``.

A benchmark knows the result of a configuration at a fidelity *and how long it would take* to get it from scratch,
which is what the zero-wait simulator (:mod:`core.hpo.simulator`) needs to replay an asynchronous run.

Example:
    >>> from core.hpo.benchmarks import MFBranin
    >>> bench = MFBranin()
    >>> result = bench.evaluate({"x0": 0.5, "x1": 0.5}, fidelity=100)
    >>> round(result.values[0], 4), result.runtime
    (24.13, 3600.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class BenchmarkResult:
    """Objective value(s), the runtime from scratch to this fidelity (seconds), optional constraints (<= 0 ok)."""

    values: tuple[float, ...]
    runtime: float
    constraints: tuple[float, ...] | None = None


@runtime_checkable
class Benchmark(Protocol):
    """What the simulator and the study runner need from a benchmark."""

    name: str

    @property
    def directions(self) -> Sequence[str]:
        """``"minimize"`` or ``"maximize"`` per objective."""
        ...

    @property
    def search_space(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna distributions of the parameters, by name."""
        ...

    @property
    def fidelities(self) -> Sequence[float]:
        """Fidelity levels in increasing order (e.g. epochs); the last is the full fidelity."""
        ...

    def evaluate(self, params: Mapping[str, Any], fidelity: float) -> BenchmarkResult:
        """The result of ``params`` at ``fidelity`` and the runtime to get it from scratch."""
        ...


def suggest(trial: optuna.Trial, name: str, distribution: optuna.distributions.BaseDistribution) -> Any:
    """``trial.suggest_*`` for any Optuna distribution (float, int, categorical).

    Example:
        >>> import optuna
        >>> trial = optuna.create_study().ask()
        >>> 0.0 <= suggest(trial, "x", optuna.distributions.FloatDistribution(0.0, 1.0)) <= 1.0
        True
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise TypeError(f"unsupported distribution {type(distribution).__name__} for {name!r}")


__all__ = ["Benchmark", "BenchmarkResult", "suggest"]
