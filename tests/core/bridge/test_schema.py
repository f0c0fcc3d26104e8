"""The bridge config's schema: defaults in one place, every mistake one line naming the file and the key."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from core.bridge.schema import BridgeConfig, check_bridge_config
from core.config import load_config, package_dir
from core.errors import ConfigError

EXAMPLE = package_dir("core.bridge.config") / "examples" / "analytic.yaml"


def test_the_example_gets_the_schema_defaults_and_types() -> None:
    cfg = load_config(EXAMPLE)
    assert OmegaConf.get_type(cfg) is BridgeConfig
    assert cfg.models.cheap.n_trials == 80 and cfg.models.expensive.n_max_jobs == 2  # file, then schema default
    assert cfg.evaluate.refine == 4 and cfg.fit.select == "cv" and cfg.models.cheap.jobs.backend == "local"
    assert cfg.workspace == "runs/bridge/analytic-linear"
    assert check_bridge_config(cfg) is cfg  # loaded with the schema: not checked twice


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        ("scenarios.n_train=many", "scenarios.n_train", "'many' is not an int"),
        ("scenarios.dim=2.5", "scenarios.dim", "2.5 is not an int"),
        ("scenarios.mapping=curvy", "scenarios.mapping", "'curvy' is not one of linear, nonlinear"),
        ("+scenarios.n_tran=3", "scenarios.n_tran", "unknown argument 'n_tran'"),
        ("scenarios._target_=nosuch.Family", "scenarios._target_", "does not import"),
        ("+bogus_key=1", "bogus_key", "unknown key 'bogus_key'"),
        ("+models.cheap.n_trails=3", "models.cheap.n_trails", "unknown key 'n_trails'"),
        ("models.expensive.n_trials=0", "models.expensive.n_trials", "below the minimum 1"),
        ("models.cheap.direction=maximize", "models.cheap.direction", "not one of minimize"),
        ("models.cheap.objective=null", "models.cheap.objective", "neither objective nor command"),
        ("+models.cheap.command=[echo]", "models.cheap.objective", "both objective and command"),
        ("models.cheap.objective=nosuch.f", "models.cheap.objective", "does not import"),
        ("models.cheap.params.xi0=[1,1]", "models.cheap.params.xi0", "low (1) equals high (1)"),
        ("models.cheap.params.xi0=[nan,1]", "models.cheap.params.xi0", "two finite numbers"),
        ("models.cheap.params.xi0=[relu,gelu]", "models.cheap.params.xi0", "float range [low, high] with two"),
        ("models.cheap.params=5", "models.cheap.params", "5 is not a mapping"),
        ("models.cheap.jobs=[a]", "models.cheap.jobs", "['a'] is not a mapping"),
        ("models.cheap.sampler=5", "models.cheap.sampler", "5 is not a _target_ mapping"),
        ("+models.cheap.jobs.kill_grac=3", "models.cheap.jobs.kill_grac", "unknown key 'kill_grac'"),
        ("models.cheap.jobs.backend=cloud", "models.cheap.jobs.backend", "unknown job backend 'cloud'"),
        ("models.cheap.sampler.seed=x", "models.cheap.sampler.seed", "'x' is not an int or None"),
        ("+models.cheap.sampler.bogus=1", "models.cheap.sampler.bogus", "unknown argument 'bogus'"),
        ("fit.select=lasso", "fit.select", "must be cv or one of"),
        ("fit.models=[ridge,lasso]", "fit.models[1]", "unknown regression model 'lasso'"),
        ("evaluate.refine=-1", "evaluate.refine", "below the minimum 0"),
        ("evaluate.refine_scale=wide", "evaluate.refine_scale", "not one of std, range"),
        ("evaluate.direct_gauss_newton=-2", "evaluate.direct_gauss_newton", "below the minimum 0"),
        ("models.expensive.method=newton", "models.expensive.method", "not one of sampler, gauss_newton"),
        (
            "models.expensive.method=gauss_newton models.expensive.params.theta1={type:int,low:0,high:3}",
            "models.expensive.params.theta1",
            "not a float range",
        ),
        ("evaluate.refine_full_at=inf", "evaluate.refine_full_at", "not a finite number"),
        ("parallel_studies=two", "parallel_studies", "'two' is not an int"),
        ("evaluate.refine_sampler={_target_:nosuch.S}", "evaluate.refine_sampler._target_", "does not import"),
    ],
)
def test_a_mistake_is_one_line_naming_the_file_and_the_key(override: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, override.split(" "))
    line = str(caught.value)
    assert "\n" not in line and words in line, line
    assert f"analytic.yaml: {key})" in line, line


def test_the_base_config_loads_with_its_required_keys_missing() -> None:
    cfg = load_config(package_dir("core.bridge.config") / "default.yaml")
    assert OmegaConf.is_missing(cfg, "scenarios") and OmegaConf.is_missing(cfg.models.cheap, "params")
