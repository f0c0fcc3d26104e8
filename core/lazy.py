"""Packages whose names load on first use, so that ``import core.<area>`` (and the CLI) stays cheap."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for ``package``: ``exports`` maps a public name to ``"module"`` (same
    name there) or ``"module:attribute"``; the first use imports it and keeps it in the package.

    Example:
        >>> getattr_ = lazy_getattr("core", {"Fraction": "fractions", "dumps": "json:dumps"})
        >>> getattr_("Fraction").__name__, getattr_("dumps").__name__
        ('Fraction', 'dumps')
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
        namespace[name] = value
        return value

    return __getattr__
