"""Scenarios and scenario families: what the bridge calibrates across.

A *scenario* is one situation to calibrate (a road network with its demand, a shifted test function): a name,
a split (``train`` or ``test``), a seed, and free-form ``context`` data the objectives read. A *family* is any
object with a ``scenarios()`` method returning them; the bridge config names it as a ``_target_``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

Split = Literal["train", "test"]


@dataclass(frozen=True)
class Scenario:
    """One scenario. ``context`` must be JSON-serializable: it travels to trial processes as a file."""

    name: str
    split: Split
    seed: int
    context: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        split = data["split"]
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test, not {split!r}")
        return cls(name=str(data["name"]), split=split, seed=int(data["seed"]), context=dict(data["context"]))

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@runtime_checkable
class ScenarioFamily(Protocol):
    """Anything that yields the train and test scenarios of a bridge."""

    def scenarios(self) -> Sequence[Scenario]: ...


def split_names(scenarios: Sequence[Scenario]) -> tuple[list[str], list[str]]:
    """Names of the train and the test scenarios, in order."""
    return [s.name for s in scenarios if s.split == "train"], [s.name for s in scenarios if s.split == "test"]
