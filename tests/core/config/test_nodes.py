from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import MISSING, OmegaConf

from core.config import as_dict, load_config
from core.errors import ConfigError


def test_a_loaded_node_is_a_resolved_plain_dict_with_str_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "n: 3\nmodel:\n  width: ${eval:2 * ${n}}\n  1: one\n  inner: {depth: '${n}'}\n  sizes: ['${n}', 4]\n"
    )
    model = as_dict(load_config(path).model, where="model")
    assert model == {"width": 6, "1": "one", "inner": {"depth": 3}, "sizes": [3, 4]}
    assert type(model) is dict and type(model["inner"]) is dict and type(model["sizes"]) is list


def test_resolve_false_keeps_interpolations_as_written() -> None:
    cfg = OmegaConf.create({"n": 3, "node": {"x": "${n}"}})
    assert as_dict(cfg.node, where="node", resolve=False) == {"x": "${n}"}


def test_the_result_is_a_copy() -> None:
    cfg = OmegaConf.create({"node": {"x": 1, "inner": {"y": 2}}})
    plain = as_dict(cfg.node, where="node")
    plain["inner"]["y"] = 5
    plain.pop("x")
    assert cfg.node.x == 1 and cfg.node.inner.y == 2


def test_a_plain_mapping_passes_with_str_keys() -> None:
    source = {"a": 1, 2: "b"}
    plain = as_dict(source, where="node")
    assert plain == {"a": 1, "2": "b"}
    assert plain is not source


@pytest.mark.parametrize(
    ("value", "found"),
    [([1, 2], "a list"), (3, "3"), ("fast", "'fast'"), (None, "None"), (True, "True")],
)
def test_anything_but_a_mapping_is_one_config_error_line(value: object, found: str) -> None:
    cfg = OmegaConf.create({"scene": value})
    with pytest.raises(ConfigError) as info:
        as_dict(cfg.scene, where="scene", hint="see scene.yaml")
    assert str(info.value) == f"must be a mapping, not {found} (scene) — see scene.yaml"


def test_a_huge_scalar_is_shortened_in_the_error_line() -> None:
    with pytest.raises(ConfigError) as info:
        as_dict("x" * 10_000, where="scene")
    assert len(str(info.value)) < 120


@dataclass
class _Inner:
    x: int = 1


@dataclass
class _Outer:
    unset: _Inner | None = None
    missing: _Inner = MISSING


@pytest.mark.parametrize(("key", "found"), [("unset", "None"), ("missing", "???")])
def test_a_typed_node_without_a_value_is_an_error_too(key: str, found: str) -> None:
    node = OmegaConf.structured(_Outer)._get_node(key)
    with pytest.raises(ConfigError) as info:
        as_dict(node, where=key)
    assert str(info.value) == f"must be a mapping, not {found} ({key})"
