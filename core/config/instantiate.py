"""``instantiate``: Hydra's semantics (``_target_``, ``_partial_``, ``_args_``, ``_recursive_``, ``_convert_``),
with user mistakes turned into one-line errors.

A ``_target_`` that does not import, or a call whose arguments do not fit the target's signature (an unknown
or a missing keyword), is a :class:`~core.errors.ConfigError` naming the key path. Any other exception raised by
the target itself is not a config mistake and propagates unchanged.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from core.config.loader import config_error_from
from core.config.resolvers import register_resolvers
from core.errors import ConfigError

TARGET_KEY = "_target_"


def instantiate(config: Any, *args: Any, **kwargs: Any) -> Any:
    """Build the object that ``config`` describes; see ``hydra.utils.instantiate``.

    Example:
        >>> from omegaconf import OmegaConf
        >>> cfg = OmegaConf.create({"_target_": "fractions.Fraction", "numerator": 3, "denominator": 6})
        >>> instantiate(cfg)
        Fraction(1, 2)
        >>> instantiate({"_target_": "fractions.Fraction", "_partial_": True, "numerator": 1})(denominator=4)
        Fraction(1, 4)
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    register_resolvers()
    try:
        return hydra_instantiate(config, *args, **kwargs)
    except InstantiationException as exc:
        raise _user_error(exc) from exc
    except OmegaConfBaseException as exc:
        raise config_error_from(exc, "config") from None


_FULL_KEY = re.compile(r"full_key:\s*(?P<key>\S+)")
_LOCATE = re.compile(r"Error locating target '(?P<target>[^']+)'")
_CALL = re.compile(r"Error in call to target '(?P<target>[^']+)':\s*\n?(?P<error>.*)", re.S)
_SIGNATURE = re.compile(
    r"unexpected keyword argument|missing \d+ required|takes \d+ positional|"
    r"got multiple values|positional argument"
)


def _user_error(exc: Exception) -> BaseException:
    message = str(exc)
    key_match = _FULL_KEY.search(message)
    where = f"key {key_match['key']}" if key_match else "top-level node"
    located = _LOCATE.search(message)
    if located:
        cause = exc.__cause__
        reason = f": {type(cause).__name__}: {cause}".split("\n")[0] if cause else ""
        return ConfigError(
            f"_target_ {located['target']!r} does not import{reason}",
            where=where,
            hint="check the dotted path and that its package is installed",
        )
    called = _CALL.search(message)
    cause = exc.__cause__
    if called and isinstance(cause, TypeError) and _SIGNATURE.search(str(cause)):
        return ConfigError(
            f"_target_ {called['target']!r} rejects its arguments: {cause}",
            where=where,
            hint="check the keys of this node against the target's signature",
        )
    if called and cause is not None:
        return cause  # the target's own failure: not a config mistake, keep its traceback
    return ConfigError(message.split("\n")[0], where=where)


def check_targets(config: Any) -> None:
    """Import every ``_target_`` of ``config`` now, so a typo fails before anything runs or is written.

    Raises:
        ConfigError: Naming the key path of the first target that does not import.
    """
    for key_path, target in iter_targets(config):
        try:
            locate(target)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"_target_ {target!r} does not import: {exc}",
                where=f"key {key_path}",
                hint="check the dotted path and that its package is installed",
            ) from None


def locate(dotted: str) -> Any:
    """The object a dotted path names: the longest importable module prefix, then attributes.

    Example:
        >>> locate("fractions.Fraction").__name__
        'Fraction'
    """
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name is not None and not ".".join(parts[:cut]).startswith(exc.name):
                raise  # the module exists but imports something missing: report that
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(f"no module named {parts[0]!r}")


def iter_targets(config: Any, key_path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(key path, dotted target)`` for every ``_target_`` in a config, without resolving anything else.

    Example:
        >>> list(iter_targets({"model": {"_target_": "a.B"}, "steps": [{"_target_": "c.d"}]}))
        [('model', 'a.B'), ('steps[0]', 'c.d')]
    """
    if isinstance(config, DictConfig | ListConfig):
        config = OmegaConf.to_container(config, resolve=False)
    if isinstance(config, dict):
        target = config.get(TARGET_KEY)
        if isinstance(target, str):
            yield key_path or "<root>", target
        for key, value in config.items():
            yield from iter_targets(value, f"{key_path}.{key}" if key_path else str(key))
    elif isinstance(config, list):
        for index, value in enumerate(config):
            yield from iter_targets(value, f"{key_path}[{index}]")
