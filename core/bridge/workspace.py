"""The files of one bridge workspace, and the table helpers every stage (and an app's report) reads them with.

Workspace::

    merged_config.yaml, provenance.json
    scenarios/<name>.json                 one file per scenario (what trial processes read)
    studies.journal                       every study of the bridge, named <scenario>/<role> (optuna-dashboard)
    studies/<name>/<role>/                one HPO run folder per scenario and role, with result.json
    pairs.csv                             scenario, split, ξ̂, θ̂, best values, trials, wall time
    model/model.joblib, model/card.json   the fitted h and its card (cross-validation table per output)
    evaluation.csv                        per test scenario: prediction, its expensive value, refine, direct
    report/                               report.md, summary.json, PNG plots

Example:
    >>> import tempfile
    >>> workspace = Workspace(tempfile.mkdtemp())
    >>> write_csv(workspace.pairs, [{"scenario": "a", "xi.x": 1.5}, {"scenario": "b", "theta.t": 2}])
    >>> rows = read_csv(workspace.pairs)
    >>> rows[1]["theta.t"], columns(rows, "xi."), workspace.storage.name, study_name("train-000", "cheap")
    ('2', ['xi.x'], 'studies.journal', 'train-000/cheap')
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.bridge.scenario import Scenario
from core.errors import UserError
from core.files import write_atomic

STORAGE_NAME = "studies.journal"


def study_name(scenario: str, role: str) -> str:
    """The name of a scenario's study of one role in the workspace's storage: ``<scenario>/<role>``."""
    return f"{scenario}/{role}"


class Workspace:
    """Paths of one bridge workspace."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def scenario_file(self, name: str) -> Path:
        return self.root / "scenarios" / f"{name}.json"

    def study_dir(self, name: str, role: str) -> Path:
        return self.root / "studies" / name / role

    @property
    def storage(self) -> Path:
        """The one Optuna journal holding every study of the bridge (``optuna-dashboard`` opens it)."""
        return self.root / STORAGE_NAME

    def marker(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"

    def done(self, stage: str) -> bool:
        return self.marker(stage).is_file()

    def mark(self, stage: str, summary: Mapping[str, Any]) -> None:
        self.marker(stage).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.marker(stage), json.dumps({"finished": time.time(), **summary}, indent=2) + "\n")

    def scenarios(self) -> list[Scenario]:
        files = sorted((self.root / "scenarios").glob("*.json"))
        if not files:
            raise UserError("the workspace has no scenarios", where=str(self.root), hint="run the prepare stage first")
        return [Scenario.load(f) for f in files]

    @property
    def pairs(self) -> Path:
        return self.root / "pairs.csv"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation.csv"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows (dicts; the columns are every key in first-seen order) to a CSV file, atomically."""
    names: list[str] = []
    for row in rows:
        names += [c for c in row if c not in names]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names)
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a workspace CSV file; a missing file is a ``UserError`` that names the earlier stages."""
    if not path.is_file():
        raise UserError("missing workspace file", where=str(path), hint="run the earlier stages first")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def columns(rows: Sequence[Mapping[str, str]], prefix: str) -> list[str]:
    """The columns of ``rows`` that start with ``prefix`` (``xi.``, ``theta.``, ``pred.``)."""
    return [c for c in rows[0] if c.startswith(prefix)] if rows else []


def median(values: Iterable[Any]) -> float:
    """The median of the numeric values (empty strings and None skipped; NaN when nothing is left).

    >>> median(["1", "", None, 3.0, 2])
    2.0
    """
    numbers = [float(v) for v in values if v not in (None, "")]
    return float(statistics.median(numbers)) if numbers else math.nan


def load_model(workspace: Workspace) -> tuple[Any, dict[str, Any]]:
    """The fitted bridge h and its card."""
    import joblib

    path = workspace.model_dir / "model.joblib"
    if not path.is_file():
        raise UserError("no fitted model", where=str(path), hint="run the fit stage first")
    card: dict[str, Any] = json.loads((workspace.model_dir / "card.json").read_text(encoding="utf-8"))
    return joblib.load(path), card
