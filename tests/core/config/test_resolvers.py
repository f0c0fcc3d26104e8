from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config import load_config, package_dir, safe_eval
from core.errors import ConfigError

Write = Callable[[str, str], Path]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("2 ** 10 // 3", 341),
        ("7 % 3 - -1", 2),
        ("1 / 4", 0.25),
        ("max(1, 2.5) + min(3, 4) + abs(-2) + round(2.6)", 10.5),
        ("1 < 2 <= 2", True),
        ("1 < 2 > 3", False),
        ("3 if 1 > 2 else 4", 4),
        ("not 0 and (1 or 0)", True),
        ("1e3 / 8", 125.0),
    ],
)
def test_safe_eval_does_arithmetic(expression: str, expected: object) -> None:
    assert safe_eval(expression) == expected


_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv, "%": operator.mod}


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> tuple[str, int]:
    if depth == 0 or draw(st.booleans()):
        value = draw(st.integers(-1000, 1000))
        return (f"({value})", value)
    symbol = draw(st.sampled_from(sorted(_OPS)))
    left_text, left = draw(expressions(depth - 1))
    right_text, right = draw(expressions(depth - 1))
    if symbol in ("//", "%") and right == 0:
        return (left_text, left)
    return (f"({left_text} {symbol} {right_text})", _OPS[symbol](left, right))


@given(expressions())
def test_safe_eval_agrees_with_python_on_integer_arithmetic(case: tuple[str, int]) -> None:
    text, value = case
    assert safe_eval(text) == value


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('id')",
        "open('/tmp/kakehashi-eval-marker', 'w')",
        "x + 1",
        "(1).__class__",
        "[1, 2]",
        "'a' * 3",
        "(lambda: 1)()",
        "max(1, key=abs)",
        "9 ** 9 ** 9",
        "1 +",
    ],
)
def test_safe_eval_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(ConfigError):
        safe_eval(expression)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("""b: ${eval:'__import__("os").system("touch MARKER")'}""", r"not a call to .__import__"),
        ("""b: ${eval:'open("MARKER", "w")'}""", r"not a call to 'open'"),
        ("b: ${eval:__import__('os').system('touch MARKER')}", r"quote resolver arguments"),
    ],
)
def test_eval_in_a_config_cannot_execute_code(write: Write, tmp_path: Path, line: str, message: str) -> None:
    marker = tmp_path / "marker"
    path = write("m.yaml", line.replace("MARKER", str(marker)) + "\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert "m.yaml: b" in info.value.line()
    assert not marker.exists()


def test_eval_in_a_config_with_commas_and_interpolations(write: Write) -> None:
    cfg = load_config(
        write(
            "m.yaml",
            "n: 6\nhalf: ${eval:${n} // 2}\nbig: ${eval:'max(${n}, 10)'}\nlr: ${eval:'0.1 * 2 ** -2'}\n",
        )
    )
    assert (cfg.half, cfg.big, cfg.lr) == (3, 10, 0.025)


def test_pkg_names_a_package_folder_and_plain_subfolders() -> None:
    assert package_dir("core.config") == Path(__file__).parents[3] / "core" / "config"
    assert package_dir("core.config.examples").is_dir()
    with pytest.raises(ConfigError, match="no package folder for 'no_such_package_xyz'"):
        package_dir("no_such_package_xyz")
