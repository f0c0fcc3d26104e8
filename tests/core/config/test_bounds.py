"""Bounded config loading: each resource bomb is refused with one line, fast."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.config import load_config, safe_eval
from core.config.loader import MAX_DEPTH, MAX_NODES
from core.errors import ConfigError

Write = Callable[[str, str], Path]
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)


def refused_fast(path: Path, match: str, overrides: tuple[str, ...] = ()) -> str:
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path, list(overrides))
    assert time.perf_counter() - start < 10.0  # milliseconds when idle; unbounded, these ran for minutes
    line = info.value.line()
    assert "\n" not in line and len(line) < 600
    return line


def test_alias_bomb_is_refused(write: Write) -> None:
    assert len(ALIAS_BOMB) < 2048  # 9**9 leaves once expanded
    refused_fast(write("bomb.yaml", ALIAS_BOMB), rf"expands to more than {MAX_NODES} values")


def test_a_few_aliases_are_fine(write: Write) -> None:
    cfg = load_config(write("ok.yaml", "base: &b {lr: 0.1}\nuse: *b\nother: *b\n"))
    assert cfg.use.lr == 0.1 and cfg.other.lr == 0.1


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "a: " + "{b: " * 100_000 + "1" + "}" * 100_000 + "\n",
        "a:\n" + "".join(" " * i + "- \n" for i in range(1, 3000)),
    ],
    ids=["flow-list", "flow-map", "block"],
)
def test_deep_nesting_is_refused(write: Write, text: str) -> None:
    refused_fast(write("deep.yaml", text), r"nested deeper than|maximum nesting depth|YAML error")


def test_nesting_within_the_limit_loads(write: Write) -> None:
    depth = MAX_DEPTH - 2
    cfg = load_config(write("ok.yaml", "a: " + "[" * depth + "1" + "]" * depth + "\n"))
    assert cfg.a is not None


def test_a_chain_of_1000_bases_loads_without_recursion(write: Write, tmp_path: Path) -> None:
    write("f0.yaml", "depth: 0\nkeep: root\n")
    for i in range(1, 1000):
        write(f"f{i}.yaml", f"_base_: f{i - 1}.yaml\ndepth: {i}\n")
    start = time.perf_counter()
    cfg = load_config(tmp_path / "f999.yaml")
    assert cfg.depth == 999 and cfg.keep == "root"
    assert time.perf_counter() - start < 600  # a few seconds when idle; the bound is for a loaded machine


def test_inherit_above_the_root_is_an_error(write: Write) -> None:
    refused_fast(write("up.yaml", "a: {b: {_inherit_: '${....x}'}}\nx: {y: 1}\n"), r"_inherit_ .* goes up 3 levels")
    cfg = load_config(write("ok.yaml", "a: {b: {_inherit_: '${...x}'}}\nx: {y: 1}\n"))
    assert cfg.a.b.y == 1


@pytest.mark.parametrize(
    ("expression", "match"),
    [
        ("round(7, -10**9)", "at most 400 digits"),
        ("9**9**9", "power this large"),
        ("10**1000 * 10**1000", "product this large"),
        ("2**4096 * 2", "ints are limited"),
        ("9" * 1500, "ints are limited"),
        ("-" * 5000 + "1", "too long"),
        ("(" * 300 + "1" + ")" * 300, "cannot parse"),
        ("+".join(["1"] * 600), "more than 500 parts"),
        ("min()", "failed"),
        ("round(1e308 * 10)", "failed"),
        ("1 / 0", "division by zero"),
        ("'ab' * 10**9", "constant"),
    ],
)
def test_every_eval_operation_is_bounded(expression: str, match: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=match) as info:
        safe_eval(expression)
    assert time.perf_counter() - start < 10.0  # unbounded, round(7, -10**9) runs for minutes
    assert len(info.value.line()) < 400


def test_eval_results_near_the_bound_print(write: Write) -> None:
    cfg = load_config(write("big.yaml", "x: ${eval:'2 ** 4000'}\n"))
    assert len(str(cfg.x)) > 1000


def test_eval_bomb_in_a_file_is_one_line(write: Write) -> None:
    line = refused_fast(write("e.yaml", "x: ${eval:'round(7, -10**9)'}\n"), r"at most 400 digits")
    assert "e.yaml: x" in line


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a: [1\n", r"YAML syntax error.*line 2"),
        ("a: 1\n---\nb: 2\n", r"YAML|single document"),
        ("[1]: x\n", r"key must be a plain value|YAML"),
        ("\x00\x01", r"YAML|cannot read"),
        ("a: !!python/object:os.system x\n", r"YAML|constructor"),
    ],
)
def test_malformed_yaml_is_one_line(write: Write, text: str, match: str) -> None:
    refused_fast(write("bad.yaml", text), match)


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    refused_fast(tmp_path, r"is a directory")


def test_huge_override_is_refused() -> None:
    from core.config.loader import parse_override

    with pytest.raises(ConfigError, match="too large or too deeply nested"):
        parse_override("a=" + "[" * 200 + "]" * 200)
