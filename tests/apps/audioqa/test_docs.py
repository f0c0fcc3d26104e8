"""The runnable examples in the docstrings of apps.audioqa."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["sounds", "scenes", "functional", "sed", "qa", "data", "evaluate", "rules"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"apps.audioqa.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
