"""Command templates: an argv list whose ``{name}`` placeholders are filled per argument, never through a shell.

Only known names are replaced (each parameter, ``trial_number``, ``out_file``, ``report_file``,
``trial_dir``, ``run_dir``, ``python`` (the runner's interpreter)); any other brace text (JSON, ``${VAR}``,
``{unknown}``) stays as written, and ``{{name}}`` is the literal text ``{name}``. A value with spaces or shell
metacharacters stays one argument, unexpanded.

Example:
    >>> render_command(["python", "f.py", "--x={x}", '{"keep": 1}', "{{x}}", "{name}"], {"x": 0.5, "name": "a; b"})
    ['python', 'f.py', '--x=0.5', '{"keep": 1}', '{x}', 'a; b']
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import ConfigError

_PLACEHOLDER = re.compile(r"\{\{([A-Za-z_]\w*)\}\}|(?<!\$)\{([A-Za-z_]\w*)\}")
TRIAL_FIELDS = ("trial_number", "out_file", "report_file", "trial_dir", "run_dir", "python")


def parse_command(node: Any, where: str = "command") -> list[str]:
    """A command template from the config: a list of arguments, or one string split like a shell would (no shell
    runs it)."""
    from omegaconf import ListConfig, OmegaConf

    if isinstance(node, ListConfig):
        node = OmegaConf.to_container(node, resolve=True)
    if isinstance(node, str):
        try:
            node = shlex.split(node)
        except ValueError as exc:
            raise ConfigError(f"cannot split the command: {exc}", where=where) from None
    if not isinstance(node, list | tuple) or not node:
        raise ConfigError("command must be a non-empty list of arguments", where=where, hint="e.g. [python, f.py]")
    return [str(arg) for arg in node]


def format_value(value: Any) -> str:
    """How a value appears in an argument: floats keep full precision, lists and dicts become JSON."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return str(value)


def render_command(template: Sequence[str], values: Mapping[str, Any]) -> list[str]:
    """Fill the placeholders of each argument of ``template`` from ``values``."""

    def fill(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "{" + match.group(1) + "}" if match.group(1) in values else match.group(0)
        name = match.group(2)
        return format_value(values[name]) if name in values else match.group(0)

    return [_PLACEHOLDER.sub(fill, arg) for arg in template]


def unknown_placeholders(template: Sequence[str], names: Sequence[str]) -> list[str]:
    """Placeholders of ``template`` that no parameter or trial field fills (likely typos)."""
    known = set(names) | set(TRIAL_FIELDS)
    found = []
    for arg in template:
        for match in _PLACEHOLDER.finditer(arg):
            name = match.group(2)
            if name is not None and name not in known and name not in found:
                found.append(name)
    return found
