from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from core.config import load_config
from core.errors import ConfigError

Write = Callable[[str, str], Path]


def test_base_string_merges_under_the_file(write: Write) -> None:
    write("base.yaml", "a: 1\nb: {x: 1, y: 2}\n")
    cfg = load_config(write("main.yaml", "_base_: base.yaml\nb: {y: 3}\nc: 4\n"))
    assert OmegaConf.to_container(cfg) == {"a": 1, "b": {"x": 1, "y": 3}, "c": 4}


def test_base_list_later_wins_and_bases_have_bases(write: Write) -> None:
    write("root.yaml", "a: root\nr: 1\n")
    write("one.yaml", "_base_: root.yaml\na: one\nb: one\n")
    write("two.yaml", "b: two\n")
    cfg = load_config(write("main.yaml", "_base_: [one.yaml, two.yaml]\n"))
    assert OmegaConf.to_container(cfg) == {"a": "one", "r": 1, "b": "two"}


def test_base_is_relative_to_the_including_file_not_the_cwd(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("sites/common/defaults.yaml", "partition: gpu\n")
    write("sites/abci.yaml", "_base_: common/defaults.yaml\nnodes: 2\n")
    main = write("exp/main.yaml", "_base_: ../sites/abci.yaml\n")
    monkeypatch.chdir(tmp_path / "sites" / "common")
    assert OmegaConf.to_container(load_config(main)) == {"partition": "gpu", "nodes": 2}


def test_base_inside_a_node_and_from_a_package(write: Write) -> None:
    write("trainer.yaml", "max_epochs: 10\ndevices: 1\n")
    cfg = load_config(
        write(
            "main.yaml",
            (
                "trainer:\n  _base_: trainer.yaml\n  max_epochs: 3\n"
                "example:\n  _base_: ${pkg:core.config}/examples/base.yaml\n"
            ),
        )
    )
    assert cfg.trainer == {"max_epochs": 3, "devices": 1}
    assert cfg.example.model.alpha == 1.0


def test_base_cycle_names_the_chain(write: Write) -> None:
    write("a.yaml", "_base_: b.yaml\n")
    write("b.yaml", "_base_: c.yaml\n")
    write("c.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match=r"_base_ cycle: a\.yaml → b\.yaml → c\.yaml → a\.yaml"):
        load_config(write("main.yaml", "_base_: a.yaml\n"))


def test_missing_base_names_the_including_file(write: Write) -> None:
    main = write("main.yaml", "_base_: nope.yaml\n")
    with pytest.raises(ConfigError, match=r"config file not found.*nope\.yaml, included from .*main\.yaml"):
        load_config(main)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_yaml_syntax_error_names_line_and_column(write: Write) -> None:
    path = write("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=r"YAML syntax error.*bad\.yaml, line 3, column 2"):
        load_config(path)


def test_duplicate_keys_are_refused(write: Write) -> None:
    with pytest.raises(ConfigError, match=r"duplicate key 'a'.*line 2"):
        load_config(write("dup.yaml", "a: 1\na: 2\n"))


def test_top_level_must_be_a_mapping(write: Write) -> None:
    with pytest.raises(ConfigError, match="must be a mapping, not a list"):
        load_config(write("list.yaml", "- 1\n- 2\n"))


def test_scientific_notation_is_a_float(write: Write) -> None:
    cfg = load_config(write("lr.yaml", "lr: 1e-3\nwd: 5.e-4\nname: e5\n"))
    assert cfg.lr == 0.001 and cfg.wd == 0.0005 and cfg.name == "e5"


def test_inherit_merges_another_node_and_own_keys_win(write: Write) -> None:
    cfg = load_config(
        write(
            "main.yaml",
            (
                "defaults: {lr: 0.1, layers: 2, opt: {name: sgd, momentum: 0.9}}\n"
                "small: {_inherit_: '${defaults}', layers: 1, opt: {name: adam}}\n"
                "tiny: {_inherit_: '${small}', lr: 0.01}\n"
            ),
        )
    )
    assert OmegaConf.to_container(cfg.small) == {
        "lr": 0.1,
        "layers": 1,
        "opt": {"name": "adam", "momentum": 0.9},
    }
    assert cfg.tiny.layers == 1 and cfg.tiny.lr == 0.01 and cfg.tiny.opt.momentum == 0.9


def test_inherit_relative_and_list(write: Write) -> None:
    cfg = load_config(
        write(
            "main.yaml",
            (
                "models:\n  base: {a: 1, b: 1}\n  extra: {c: 1}\n"
                "  mine: {_inherit_: ['${..base}', '${models.extra}'], b: 2}\n"
            ),
        )
    )
    assert OmegaConf.to_container(cfg.models.mine) == {"a": 1, "b": 2, "c": 1}


def test_inherit_cycle_and_missing_source(write: Write) -> None:
    with pytest.raises(ConfigError, match=r"_inherit_ cycle: a → b → a"):
        load_config(write("c.yaml", "a: {_inherit_: '${b}'}\nb: {_inherit_: '${a}'}\n"))
    with pytest.raises(ConfigError, match=r"_inherit_ points to a missing node.*m\.yaml: a\._inherit_"):
        load_config(write("m.yaml", "a: {_inherit_: '${nowhere}'}\n"))


def test_overrides_are_applied_last(write: Write) -> None:
    write("base.yaml", "a: {x: 1}\nlst: [1, 2, 3]\n")
    path = write("main.yaml", "_base_: base.yaml\nb: {_inherit_: '${a}', y: 2}\ngone: 1\n")
    cfg = load_config(path, ["a.x=5", "b.y=[1, 2]", "lst[1]=20", "lst.2=30", "+c.d=1e-3", "++a.z=z", "~gone"])
    assert OmegaConf.to_container(cfg) == {
        "a": {"x": 5, "z": "z"},
        "lst": [1, 20, 30],
        "b": {"x": 1, "y": [1, 2]},
        "c": {"d": 0.001},
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("a.xx=1", r"no key 'a\.xx'.*did you mean a\.x\?"),
        ("a.x", r"is not key=value"),
        ("=3", r"is not key=value"),
        ("+a.x=2", r"adds a key that exists"),
        ("~a.nope", r"no key 'a\.nope'"),
        ("a.x.y=1", r"not a mapping or list"),
        ("lst[7]=1", r"no key 'lst\[7\]'"),
    ],
)
def test_bad_overrides_are_one_clear_error(write: Write, override: str, message: str) -> None:
    path = write("main.yaml", "a: {x: 1}\nlst: [1]\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path, [override])
    assert "\n" not in info.value.line()


def test_interpolation_to_a_missing_key_names_the_key(write: Write) -> None:
    with pytest.raises(ConfigError, match=r"Interpolation key 'model\.width' not found \(.*m\.yaml: layer\.size\)"):
        load_config(write("m.yaml", "model: {depth: 2}\nlayer: {size: '${model.width}'}\n"))


def test_missing_values_are_allowed_until_used(write: Write) -> None:
    cfg = load_config(write("m.yaml", "data_dir: ???\n"), [])
    assert OmegaConf.is_missing(cfg, "data_dir")


def test_path_is_relative_to_the_file_that_wrote_it(write: Write, tmp_path: Path) -> None:
    write("lib/base.yaml", "data: ${path:data/train.h5}\n")
    cfg = load_config(write("exp/main.yaml", "_base_: ../lib/base.yaml\nout: ${path:out}\n"))
    assert cfg.data == str(tmp_path / "lib" / "data" / "train.h5")
    assert cfg.out == str(tmp_path / "exp" / "out")


def test_now_is_one_value_per_process(write: Write) -> None:
    cfg = load_config(write("m.yaml", "a: ${now:%Y}\nb: ${now:}\nc: ${now:}\n"))
    assert cfg.a == str(datetime.date.today().year)
    assert cfg.b == cfg.c


def test_env_resolver_in_a_base_path(write: Write, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write("site/slurm.yaml", "partition: debug\n")
    monkeypatch.setenv("KH_TEST_SITE", str(tmp_path / "site"))
    cfg = load_config(write("m.yaml", "_base_: ${oc.env:KH_TEST_SITE}/slurm.yaml\n"))
    assert cfg.partition == "debug"
