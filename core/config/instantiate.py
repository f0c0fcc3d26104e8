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

from core.config.loader import config_error_from, shorten
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
    check_special_keys(config)
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
        return ConfigError(
            f"_target_ {located['target']!r} does not import: {_import_failure(located['target'], exc)}",
            where=where,
            hint=_import_hint(located["target"], exc),
        )
    called = _CALL.search(message)
    cause = exc.__cause__
    if called and isinstance(cause, TypeError) and _SIGNATURE.search(str(cause)):
        return ConfigError(
            f"_target_ {called['target']!r} rejects its arguments: {cause}",
            where=where,
            hint="check the keys of this node against the target's signature",
        )
    if called and cause is not None and not _is_hydra(cause):
        return cause  # the target's own failure: not a config mistake, keep its traceback
    return ConfigError(_whole(exc), where=where, hint=_hint_for(message))


def _is_hydra(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("hydra")


def _whole(exc: BaseException) -> str:
    """Hydra's message on one line with the root cause it chains (its first line alone often ends in ':')."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not _FULL_KEY.match(line.strip())]
    text = " ".join(lines)
    root = exc.__cause__
    while root is not None and root.__cause__ is not None:
        root = root.__cause__
    if root is not None and str(root) and str(root) not in text:
        text += f" ({type(root).__name__}: {' '.join(str(root).split())})"
    return shorten(re.sub(r",? set env var HYDRA_FULL_ERROR=1 to see chained exception\.?", "", text), 400)


def _import_failure(target: str, exc: BaseException) -> str:
    """Why ``target`` does not import: the real cause (``No module named 'dep'``) rather than Hydra's wrapper."""
    try:
        locate(target)
    except ModuleNotFoundError as error:
        return f"ModuleNotFoundError: {error}"
    except (ImportError, AttributeError) as error:
        return f"{type(error).__name__}: {error}"
    except Exception as error:  # the module raised while importing: that is the cause
        return f"importing it raised {type(error).__name__}: {error}"
    return _whole(exc)


def _import_hint(target: str, exc: BaseException) -> str:
    root = exc.__cause__
    while root is not None and root.__cause__ is not None:
        root = root.__cause__
    missing = root.name if isinstance(root, ModuleNotFoundError) else None
    if missing and not target.startswith(missing.split(".")[0] + "."):
        return f"install {missing!r} (the module imports it), or check the dotted path"
    return "check the dotted path and that its package is installed"


def _hint_for(message: str) -> str | None:
    if "blocklisted" in message or "cannot be selected" in message:
        return "a config may not name this target; call it from a Python function of your own"
    if "_args_" in message:
        return "_args_ is a list of positional arguments: _args_: [1, 2]"
    return None


_SPECIAL_BOOLS = ("_partial_", "_recursive_")
_CONVERT_MODES = ("none", "partial", "object", "all")


def check_special_keys(config: Any, key_path: str = "") -> None:
    """Refuse ill-typed Hydra keys before ``instantiate`` runs: ``_args_`` a list, ``_partial_``/``_recursive_``
    booleans, ``_convert_`` one of none/partial/object/all.

    Example:
        >>> check_special_keys({"m": {"_target_": "a.B", "_args_": 5}})
        Traceback (most recent call last):
        ...
        core.errors.ConfigError: _args_ must be a list, not int (key m._args_) — write _args_: [1, 2]
    """
    if isinstance(config, DictConfig | ListConfig):
        config = OmegaConf.to_container(config, resolve=False)
    if isinstance(config, dict):
        for name, value in config.items():
            child = f"{key_path}.{name}" if key_path else str(name)
            if name == "_args_" and not isinstance(value, list) and not _interpolated(value):
                raise ConfigError(
                    f"_args_ must be a list, not {type(value).__name__}",
                    where=f"key {child}",
                    hint="write _args_: [1, 2]",
                )
            if name in _SPECIAL_BOOLS and not isinstance(value, bool) and not _interpolated(value):
                raise ConfigError(
                    f"{name} must be true or false, not {value!r}", where=f"key {child}", hint=f"write {name}: true"
                )
            if name == "_convert_" and not _interpolated(value) and str(value).lower() not in _CONVERT_MODES:
                raise ConfigError(
                    f"_convert_ must be one of {', '.join(_CONVERT_MODES)}, not {value!r}", where=f"key {child}"
                )
            check_special_keys(value, child)
    elif isinstance(config, list):
        for index, value in enumerate(config):
            check_special_keys(value, f"{key_path}[{index}]")


def _interpolated(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


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
