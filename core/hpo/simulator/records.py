"""What an objective returns to the simulator, and what the simulator returns: per-trial records and CSV export.

Example:
    >>> evaluation = Evaluation(values=0.25, runtime=120.0, reports=(Report(step=1, value=0.5, elapsed=40.0),))
    >>> evaluation.value_tuple()
    (0.25,)
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Report:
    """An intermediate value: ``trial.report(value, step)`` happens ``elapsed`` simulated seconds after the start."""

    step: int
    value: float
    elapsed: float


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one trial as a benchmark knows it.

    Args:
        values: The objective value, or one per objective.
        runtime: Simulated seconds from the trial's start to its result (from scratch: see ``checkpoint_key``).
        reports: Intermediate values, in order of ``elapsed`` (each at most ``runtime``); a pruner decides after each.
        constraints: Constraint values (feasible when all <= 0), stored when the trial finishes with
            ``Trial.set_constraint`` (what Optuna's samplers read) and as the user attribute ``constraints``.
        user_attrs: More user attributes, stored when the trial finishes (not before: no future leakage).
        checkpoint_key: Identifies the configuration for checkpoint resume (with ``fidelity``): a later trial of
            the same key at a higher fidelity is charged only the runtime beyond the best checkpoint available.
        fidelity: The fidelity this evaluation reached (for checkpoint resume).
    """

    values: float | Sequence[float]
    runtime: float
    reports: Sequence[Report] = ()
    constraints: Sequence[float] | None = None
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    checkpoint_key: Hashable | None = None
    fidelity: float | None = None

    def value_tuple(self) -> tuple[float, ...]:
        if isinstance(self.values, int | float):
            return (float(self.values),)
        return tuple(float(v) for v in self.values)


@dataclass
class TrialRecord:
    """One simulated trial: where and when it ran (simulated seconds), and how it ended.

    ``asked`` is when its worker asked the sampler, ``start`` when the sample was ready (``asked`` + sampler time),
    ``end`` when it finished, was pruned, failed or was cut by the time budget (state ``FAIL``, ``cut=True``).
    ``reports`` holds ``(step, value, simulated time)`` of every intermediate value that became visible.
    """

    number: int
    worker: int
    asked: float
    start: float = math.nan
    end: float = math.nan
    sampler_time: float = 0.0
    state: str = "RUNNING"
    values: tuple[float, ...] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    reports: list[tuple[int, float, float]] = field(default_factory=list)
    charged_runtime: float | None = None
    cut: bool = False


@dataclass
class SimulationResult:
    """All trials of one simulated run, in trial-number order, and the order the results reached the sampler."""

    trials: list[TrialRecord]
    order: list[int]
    n_workers: int
    directions: list[str]
    end_time: float
    wall_seconds: float = 0.0

    def best_so_far(self, objective: int = 0) -> tuple[list[float], list[float]]:
        """Simulated times at which the best value improved, and the best values then (COMPLETE trials only).

        Example:
            >>> t = [TrialRecord(0, 0, 0.0, 0.0, 5.0, state="COMPLETE", values=(2.0,)),
            ...      TrialRecord(1, 1, 0.0, 0.0, 3.0, state="COMPLETE", values=(4.0,))]
            >>> SimulationResult(t, [1, 0], 2, ["minimize"], 5.0).best_so_far()
            ([3.0, 5.0], [4.0, 2.0])
        """
        sign = 1.0 if self.directions[objective] == "minimize" else -1.0
        times: list[float] = []
        best: list[float] = []
        by_number = {t.number: t for t in self.trials}
        for number in self.order:
            trial = by_number[number]
            if trial.state != "COMPLETE" or trial.values is None:
                continue
            value = trial.values[objective]
            if not best or sign * value < sign * best[-1]:
                times.append(trial.end)
                best.append(value)
        return times, best

    def to_csv_text(self) -> str:
        """One row per trial: number, worker, times, state, values, params (the same run gives the same bytes)."""
        n_values = max((len(t.values) for t in self.trials if t.values), default=len(self.directions))
        param_names = sorted({name for t in self.trials for name in t.params})
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            [
                "number",
                "worker",
                "asked",
                "start",
                "end",
                "sampler_time",
                "state",
                "cut",
                "n_reports",
                *(f"value_{i}" for i in range(n_values)),
                *(f"params_{name}" for name in param_names),
            ]
        )
        for t in self.trials:
            values: list[float | str] = list(t.values) if t.values else []
            values += [""] * (n_values - len(values))
            writer.writerow(
                [
                    t.number,
                    t.worker,
                    repr(t.asked),
                    repr(t.start),
                    repr(t.end),
                    repr(t.sampler_time),
                    t.state,
                    int(t.cut),
                    len(t.reports),
                    *(repr(v) if isinstance(v, float) else v for v in values),
                    *(t.params.get(name, "") for name in param_names),
                ]
            )
        return buffer.getvalue()

    def to_csv(self, path: str | Path) -> Path:
        """Write :meth:`to_csv_text` to ``path`` atomically and return the path."""
        from core.files import write_atomic

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, self.to_csv_text())
        return target


__all__ = ["Evaluation", "Report", "SimulationResult", "TrialRecord"]
