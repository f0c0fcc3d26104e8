"""The runnable examples in the docstrings of apps.robots.frontend."""

from __future__ import annotations

import doctest
import importlib

import pytest

pytest.importorskip("torch")
pytest.importorskip("pyroomacoustics")

MODULES = ["functional", "speech", "simulate", "clustering", "model", "task", "enhance", "evaluate", "asr"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"apps.robots.frontend.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
