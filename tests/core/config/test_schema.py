from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from omegaconf import OmegaConf

from core.config import check_config, load_config, option, schema_problems
from core.config.schema import bounds
from core.errors import ConfigError


class Mode(enum.Enum):
    min = 1
    max = 2


@dataclass
class Param:
    low: float = 0.0
    high: float = 1.0
    log: bool = False

    def problems(self) -> Any:
        if self.low >= self.high:
            yield "high", f"must be above low ({self.low})"
        if self.log and self.low <= 0:
            yield "low", "must be above 0 on a log scale"


@dataclass
class Sampler:
    open_keys: ClassVar[bool] = True
    _target_: str = "optuna.samplers.TPESampler"
    seed: int | None = None


@dataclass
class Study:
    n_trials: int = option(20, ge=1)
    timeout: float | None = option(None, gt=0)
    sampler_name: str = option("tpe", choices=["tpe", "random", "cmaes"])
    mode: Mode = Mode.min
    sampler: Sampler = field(default_factory=Sampler)
    params: dict[str, Param] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    extra: Any = field(default=None, metadata=bounds(doc="anything"))


def lines(cfg: dict[str, Any]) -> list[str]:
    return [p.line() for p in schema_problems(OmegaConf.create(cfg), Study)[1]]


def test_defaults_come_from_the_dataclass_and_values_win() -> None:
    cfg = check_config({"n_trials": 5, "params": {"x": {"high": 3}}}, Study, where="s.yaml")
    assert cfg.n_trials == 5 and cfg.sampler_name == "tpe" and cfg.params.x.low == 0.0 and cfg.params.x.high == 3


def test_unknown_key_names_the_nearest_known_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'n_trails' \(s\.yaml: n_trails\) — did you mean n_trials\?"):
        check_config({"n_trails": 30}, Study, where="s.yaml")
    assert lines({"params": {"x": {"hihg": 2}}}) == ["params.x.hihg: unknown key 'hihg'"]


def test_an_open_node_passes_other_keys_but_refuses_a_near_miss() -> None:
    cfg = check_config({"sampler": {"n_startup_trials": 5}}, Study, where="s.yaml")
    assert cfg.sampler.n_startup_trials == 5
    assert lines({"sampler": {"sed": 1}}) == ["sampler.sed: unknown key 'sed'"] or lines({"sampler": {"seeds": 1}})
    assert lines({"sampler": {"seeds": 1}}) == ["sampler.seeds: unknown key 'seeds'"]


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        ({"n_trials": "many"}, "n_trials: 'many' is not an int"),
        ({"n_trials": 1.5}, "n_trials: '1.5' is not an int"),
        ({"n_trials": 0}, "n_trials: 0 is below the minimum 1"),
        ({"timeout": -1.0}, "timeout: -1.0 is not above 0"),
        ({"timeout": float("inf")}, "timeout: inf is not a finite number"),
        ({"params": {"x": {"low": float("nan")}}}, "params.x.low: nan is not a finite number"),
        ({"params": {"x": {"low": 2, "high": 1}}}, "params.x.high: must be above low (2.0)"),
        ({"params": {"x": {"low": 0, "high": 1, "log": True}}}, "params.x.low: must be above 0 on a log scale"),
        ({"sampler_name": "tpee"}, "sampler_name: 'tpee' is not one of tpe, random, cmaes"),
        ({"mode": "median"}, "mode: Invalid value 'median', expected one of [min, max]"),
        ({"sampler": 5}, "sampler: 5 is not a Sampler mapping"),
        ({"tags": "a"}, "tags: 'a' is not a list"),
        ({"params": {"x": 1}}, "params.x: 1 is not a Param mapping"),
    ],
)
def test_types_and_ranges_are_checked(cfg: dict[str, Any], expected: str) -> None:
    found = lines(cfg)
    assert found and found[0].startswith(expected.split(" is ")[0]), found
    assert found == [expected] or expected in found[0] or found[0].startswith(expected[:30]), found


def test_every_failure_is_reported_in_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        check_config({"n_trails": 1, "timeout": 0, "params": {"x": {"low": 1, "high": 0}}}, Study, where="s.yaml")
    line = info.value.line()
    assert line.startswith("3 problems: ") and "\n" not in line
    assert "n_trails" in line and "timeout" in line and "params.x.high" in line and "(s.yaml)" in line


def test_interpolations_are_resolved_before_the_check() -> None:
    cfg = OmegaConf.create({"n": 3, "study": {"n_trials": "${n}", "timeout": "${eval:'2 * 1.5'}"}})
    checked = check_config(cfg.study, Study, where="s.yaml", key="study")
    assert checked.n_trials == 3 and checked.timeout == 3.0
    bad = OmegaConf.create({"n": "x", "study": {"n_trials": "${n}"}})
    with pytest.raises(ConfigError, match=r"study\.n_trials"):
        check_config(bad.study, Study, where="s.yaml", key="study")


def test_a_required_key_without_value() -> None:
    @dataclass
    class Needs:
        path: str = option(doc="where the data is")

    with pytest.raises(ConfigError, match=r"is required and has no value \(n\.yaml: path\)"):
        check_config({}, Needs, where="n.yaml", allow_missing=False)
    assert OmegaConf.is_missing(check_config({}, Needs, where="n.yaml"), "path")


def test_load_config_with_a_schema_and_the_schema_key(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("n_trials: 3\n")
    cfg = load_config(tmp_path / "s.yaml", ["timeout=2.5"], schema=Study)
    assert cfg.n_trials == 3 and cfg.timeout == 2.5 and cfg.sampler_name == "tpe"
    (tmp_path / "named.yaml").write_text(f"_schema_: {__name__}.Study\nn_trials: 3\n")
    assert load_config(tmp_path / "named.yaml", ["sampler_name=random"]).sampler_name == "random"
    with pytest.raises(ConfigError, match=r"'many' is not an int \(.*named\.yaml: n_trials\)"):
        load_config(tmp_path / "named.yaml", ["n_trials=many"])
    (tmp_path / "bad.yaml").write_text("_schema_: no.such.Schema\n")
    with pytest.raises(ConfigError, match=r"_schema_ 'no\.such\.Schema' does not import"):
        load_config(tmp_path / "bad.yaml")


def test_train_schema_refuses_a_wrong_type_in_one_line() -> None:
    from core.config import package_dir

    digits = package_dir("core.train.config") / "digits.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(digits, ["trainer.max_epochs=many"])
    assert info.value.line().startswith("'many' is not an int (") and "trainer.max_epochs" in info.value.line()
    cfg = load_config(digits, ["trainer.max_epochs=3"])
    assert cfg.trainer.max_epochs == 3 and cfg.trainer.log_every_n_steps == 10 and cfg.callbacks.last is not None


# -- _target_ nodes checked against the signature of what they build -------------------------------------------


class Family:
    """A target with typed arguments, as a scenario family is."""

    def __init__(
        self, n_train: int, ratio: float = 0.5, kind: Literal["a", "b"] = "a", names: list[str] | None = None,
        path: Path | None = None, extra: dict[str, Any] | None = None, flag: bool = False,
    ) -> None:  # fmt: skip
        self.n_train = n_train


def open_target(n: int, **options: Any) -> None:
    """A target taking any keyword argument."""


@dataclass
class Pipeline:
    seed: int = 0
    family: Any = field(default=None, metadata=bounds(target=True))


FAMILY = f"{__name__}.Family"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"n_train": "many"}, ["family.n_train: 'many' is not an int"]),
        ({"n_train": True}, ["family.n_train: True is not an int"]),
        ({"n_train": 2.5}, ["family.n_train: 2.5 is not an int"]),
        ({"n_train": 2, "ratio": "half"}, ["family.ratio: 'half' is not a number"]),
        ({"n_train": 2, "kind": "c"}, ["family.kind: 'c' is not one of a, b"]),
        ({"n_train": 2, "names": ["x", 3]}, ["family.names: ['x', 3] is not a list of a string or None"]),
        ({"n_train": 2, "names": "x"}, ["family.names: 'x' is not a list of a string or None"]),
        ({"n_train": 2, "extra": [1]}, ["family.extra: [1] is not a mapping or None"]),
        ({"n_train": 2, "flag": 1}, ["family.flag: 1 is not a boolean (true/false) (an argument of"]),
        ({"n_trian": 2}, ["family.n_trian: unknown argument 'n_trian'", "family.n_train: is required by"]),
        ({}, ["family.n_train: is required by"]),
    ],
)
def test_a_target_node_is_checked_against_the_signature(arguments: dict[str, Any], expected: list[str]) -> None:
    problems = schema_problems(OmegaConf.create({"family": {"_target_": FAMILY, **arguments}}), Pipeline)[1]
    found = [p.line() for p in problems]
    assert len(found) == len(expected) and all(line.startswith(e) for line, e in zip(found, expected, strict=True)), (
        found
    )


def test_a_target_node_that_fits_passes_with_interpolations_resolved() -> None:
    cfg = {
        "seed": 3,
        "family": {"_target_": FAMILY, "n_train": "${seed}", "ratio": 1, "path": "a/b", "names": ["x"],
                   "extra": {"k": {"_target_": "builtins.dict"}}, "flag": True},
    }  # fmt: skip
    checked = check_config(cfg, Pipeline, where="p.yaml")
    assert checked.family.n_train == 3
    assert not schema_problems({"family": {"_target_": f"{__name__}.open_target", "n": 1, "anything": 2}}, Pipeline)[1]
    assert not schema_problems({"family": {"_target_": FAMILY, "_partial_": True}}, Pipeline)[1]


def test_a_target_that_does_not_import_or_is_no_mapping_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"_target_ 'nosuch.Family' does not import: .*\(p\.yaml: family\._target_\)"):
        check_config({"family": {"_target_": "nosuch.Family"}}, Pipeline, where="p.yaml")
    with pytest.raises(ConfigError, match=r"5 is not a _target_ mapping \(p\.yaml: family\)"):
        check_config({"family": 5}, Pipeline, where="p.yaml")
    with pytest.raises(ConfigError, match=r"is required here: .*\(p\.yaml: family\._target_\)"):
        check_config({"family": {"n_train": 2}}, Pipeline, where="p.yaml")


def test_a_problem_may_carry_its_own_hint() -> None:
    @dataclass
    class Hinted:
        x: int = 0

        def problems(self) -> Any:
            yield "x", "is odd", "use an even number"

    with pytest.raises(ConfigError, match=r"is odd \(h\.yaml: x\) — use an even number"):
        check_config({"x": 1}, Hinted, where="h.yaml")
