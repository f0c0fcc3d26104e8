"""instantiate against direct construction, and its one-line errors."""

from __future__ import annotations

import functools
from fractions import Fraction

import pytest
from omegaconf import DictConfig, OmegaConf
from sklearn.linear_model import Lasso, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from core.config import check_targets, instantiate, iter_targets, load_config, locate, package_dir
from core.errors import ConfigError


def _same_estimator(a: object, b: object) -> bool:
    return type(a) is type(b) and a.get_params() == b.get_params()  # type: ignore[attr-defined]


def test_instantiate_equals_direct_construction() -> None:
    cfg = OmegaConf.create({"_target_": "sklearn.linear_model.Ridge", "alpha": 0.3, "fit_intercept": False})
    assert _same_estimator(instantiate(cfg), Ridge(alpha=0.3, fit_intercept=False))


def test_args_and_nested_targets() -> None:
    cfg = OmegaConf.create(
        {
            "_target_": "sklearn.pipeline.make_pipeline",
            "_args_": [
                {"_target_": "sklearn.preprocessing.StandardScaler"},
                {"_target_": "sklearn.linear_model.Lasso", "alpha": 0.5},
            ],
        }
    )
    built = instantiate(cfg)
    direct = make_pipeline(StandardScaler(), Lasso(alpha=0.5))
    assert isinstance(built, Pipeline)
    assert [type(s) for _, s in built.steps] == [type(s) for _, s in direct.steps]
    assert built.steps[1][1].alpha == direct.steps[1][1].alpha


def test_partial_returns_a_partial() -> None:
    built = instantiate({"_target_": "fractions.Fraction", "_partial_": True, "numerator": 3})
    assert isinstance(built, functools.partial)
    assert built(denominator=9) == Fraction(3, 9)


def test_recursive_false_leaves_children_as_config() -> None:
    built = instantiate(
        {
            "_target_": "builtins.dict",
            "_recursive_": False,
            "inner": {"_target_": "fractions.Fraction", "numerator": 1},
        }
    )
    assert isinstance(built["inner"], DictConfig)
    assert instantiate(built["inner"]) == Fraction(1)


def test_convert_all_gives_plain_containers() -> None:
    cfg = {"_target_": "builtins.dict", "_convert_": "all", "xs": [1, 2], "m": {"a": 1}}
    built = instantiate(cfg)
    assert type(built["xs"]) is list and type(built["m"]) is dict


def test_instantiate_from_the_example_config() -> None:
    cfg = load_config(package_dir("core.config") / "examples" / "demo.yaml", ["model.alpha=2.0"])
    assert _same_estimator(instantiate(cfg.models.ridge), Ridge(alpha=2.0))
    assert _same_estimator(instantiate(cfg.models.strong_ridge), Ridge(alpha=200.0))


def test_target_that_does_not_import_names_the_key() -> None:
    cfg = OmegaConf.create({"model": {"layer": {"_target_": "sklearn.linear_model.Rigde"}}})
    with pytest.raises(ConfigError, match=r"_target_ 'sklearn\.linear_model\.Rigde' does not import.*key model\.layer"):
        instantiate(cfg)
    with pytest.raises(ConfigError, match=r"does not import.*key model\.layer"):
        check_targets(cfg)


def test_unknown_argument_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"rejects its arguments.*alpah"):
        instantiate({"_target_": "sklearn.linear_model.Ridge", "alpah": 1.0})


def test_a_failure_inside_the_target_is_not_a_user_error() -> None:
    with pytest.raises(ZeroDivisionError):
        instantiate({"_target_": "fractions.Fraction", "numerator": 1, "denominator": 0})


def test_iter_targets_and_locate() -> None:
    cfg = {"a": {"_target_": "x.Y", "b": [{"_target_": "z.w"}]}}
    assert list(iter_targets(cfg)) == [("a", "x.Y"), ("a.b[0]", "z.w")]
    assert locate("sklearn.linear_model.Ridge") is Ridge
    with pytest.raises(ImportError):
        locate("no_such_module_xyz.Thing")
