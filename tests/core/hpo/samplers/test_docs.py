"""The docstring examples of core.hpo.samplers run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["planner", "space", "nelder_mead"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"core.hpo.samplers.{module}"))
    assert result.attempted > 0 and result.failed == 0
