"""The docstring examples of apps/robots/imitation run as tests (pytest collects doctests only under core/)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["env", "operators", "render", "team", "demos", "policy", "data", "task", "evaluation", "teleop", "pipeline"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"apps.robots.imitation.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
