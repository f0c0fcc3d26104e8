"""A pytest plugin (``-p optuna_default_nelder_mead``) that makes ``create_study()`` without a sampler build
``NelderMeadSampler(seed=0)`` instead of Optuna's default ``TPESampler``, for running Optuna's own study tests
against our sampler (``tests/core/hpo/test_optuna_study.py``).

At the end of the session it prints one line, ``nelder-mead default: built N times``, counting the samplers
the swap built in this process (threads included; forked processes count in their own copy), so the caller can
check that the swap took effect.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import pytest

if importlib.util.find_spec("fakeredis") is None:
    # Optuna's storage helper imports fakeredis at import time, for its Redis mode only, which is not run
    sys.modules["fakeredis"] = types.ModuleType("fakeredis")

import optuna
import optuna.study.study as _study_module

from core.hpo.samplers import NelderMeadSampler

SUMMARY_PREFIX = "nelder-mead default: built "

_built = 0
_built_lock = threading.Lock()


def _nelder_mead(*args: Any, **kwargs: Any) -> NelderMeadSampler:
    global _built
    with _built_lock:
        _built += 1
    return NelderMeadSampler(seed=0)


@contextmanager
def nelder_mead_by_default() -> Generator[None, None, None]:
    """While active, ``create_study()`` (and ``load_study()``) without a sampler use ``NelderMeadSampler``."""
    samplers = types.SimpleNamespace(
        **{name: getattr(optuna.samplers, name) for name in dir(optuna.samplers) if not name.startswith("__")}
    )
    samplers.TPESampler = _nelder_mead
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(_study_module, "samplers", samplers)
        yield


@pytest.fixture(autouse=True)
def _nelder_mead_by_default() -> Generator[None, None, None]:
    with nelder_mead_by_default():
        yield


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f"{SUMMARY_PREFIX}{_built} times")
