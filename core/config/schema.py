"""One schema mechanism for every config family: a dataclass declares the keys, their types, defaults and ranges.

An area describes its config (or one node of it) as a dataclass, the way OmegaConf's structured configs do, and
checks a loaded config against it with :func:`check_config`. The check:

- refuses a key the dataclass does not declare, naming the nearest known key (``did you mean n_trials?``);
  a dataclass with ``open_keys: ClassVar[bool] = True`` accepts other keys as they are (e.g. the arguments of a
  ``_target_`` that the target itself checks) unless they are a near miss of a declared key (``max_epoch``),
  and a ``dict[str, X]`` field accepts any name;
- checks types as OmegaConf does (``int``, ``float``, ``bool``, ``str``, ``Enum``, ``Optional``, lists, nested
  dataclasses), after resolving interpolations;
- checks ranges declared with :func:`option` (``ge``, ``gt``, ``le``, ``lt``, ``choices``); every ``float`` must be
  finite (no ``.nan``/``.inf``) unless ``finite=False``;
- checks a field declared with ``target=True`` (a ``_target_`` node: a scenario family, a sampler) against the
  signature of the object it names: it must import, every argument must be one it takes (else the nearest is
  named), annotated arguments must have their type (``int``, ``float``, ``bool``, ``str``, ``Literal``, ``Optional``,
  lists, mappings; others pass), and required arguments must be given (see :func:`target_problems`);
- runs the dataclass's own cross-key checks: a method ``problems(self)`` yielding ``(key, message)`` pairs (or
  ``(key, message, hint)``), called with the checked node as ``self`` (so ``self.low`` reads the config), e.g.
  ``low < high``;
- reports every failure in one :class:`~core.errors.ConfigError` line naming the file and each key path.

Defaults live in the dataclass only: the returned config is the schema's defaults with the file merged over them.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Param:
    ...     low: float = option(0.0)
    ...     high: float = option(1.0)
    ...     log: bool = False
    ...     def problems(self):
    ...         if self.low >= self.high:
    ...             yield "high", f"must be above low ({self.low})"
    ...         if self.log and self.low <= 0:
    ...             yield "low", "must be above 0 on a log scale"
    >>> @dataclass
    ... class Study:
    ...     n_trials: int = option(20, ge=1)
    ...     sampler: str = option("tpe", choices=["tpe", "random"])
    ...     params: dict[str, Param] = field(default_factory=dict)
    >>> cfg = check_config({"n_trials": 5, "params": {"x": {"high": 2}}}, Study, where="study.yaml")
    >>> cfg.n_trials, cfg.sampler, cfg.params.x.low
    (5, 'tpe', 0.0)
    >>> check_config({"n_trails": 5}, Study, where="study.yaml")
    Traceback (most recent call last):
    ...
    core.errors.ConfigError: unknown key 'n_trails' (study.yaml: n_trails) — did you mean n_trials?
    >>> bad = {"n_trials": "many", "params": {"x": {"low": 1, "high": 1}}}
    >>> print(schema_problems(bad, Study)[1])  # doctest: +NORMALIZE_WHITESPACE
    [Problem(key='n_trials', message="'many' is not an int", hint=None),
     Problem(key='params.x.high', message='must be above low (1.0)', hint=None)]
"""

import dataclasses
import difflib
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from core.errors import ConfigError, UserError

T = TypeVar("T")

_OPEN_TYPO_CUTOFF = 0.85  # in an open node, an unknown key this close to a known one is a typo (max_epoch)
_MAX_LISTED = 8  # problems spelled out in the one error line; the rest are counted


@dataclass(frozen=True)
class Problem:
    """One failure of a config against its schema: the key path and what is wrong."""

    key: str
    message: str
    hint: str | None = None

    def line(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


def option(
    default: Any = MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    finite: bool = True,
    target: bool = False,
    doc: str = "",
) -> Any:
    """A dataclass field with a default and the range it must lie in, for :func:`check_config`.

    A mutable default (list, dict) is copied per instance. Without a default the key is required.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Trainer:
        ...     max_epochs: int = option(10, ge=-1, doc="-1: no limit")
        >>> check_config({"max_epochs": -2}, Trainer, where="t.yaml")
        Traceback (most recent call last):
        ...
        core.errors.ConfigError: -2 is below the minimum -1 (t.yaml: max_epochs) — -1: no limit
    """
    metadata = bounds(ge=ge, gt=gt, le=le, lt=lt, choices=choices, finite=finite, target=target, doc=doc)
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: _copy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def bounds(
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    finite: bool = True,
    target: bool = False,
    doc: str = "",
) -> dict[str, Any]:
    """The ``metadata`` of a ``dataclasses.field`` that :func:`check_config` reads; :func:`option` in short.

    ``ruff`` (RUF009) accepts ``option(...)`` as the default of an ``int``/``float``/``str``/``bool`` field; for an
    ``Any`` or a container field write ``field(default=..., metadata=bounds(...))``.

    Example:
        >>> from dataclasses import dataclass, field
        >>> @dataclass
        ... class Job:
        ...     devices: Any = field(default="auto", metadata=bounds(doc="a count or auto"))
        >>> check_config({"devices": 2}, Job, where="job.yaml").devices
        2
    """
    chosen = list(choices) if choices else None
    return {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": chosen, "finite": finite, "target": target, "doc": doc}


def check_config(
    cfg: DictConfig | Mapping[str, Any], schema: type[Any], where: str, key: str = "", allow_missing: bool = True
) -> DictConfig:
    """Check ``cfg`` against the dataclass ``schema``; return it merged over the schema's defaults.

    Args:
        cfg: The loaded config (or one node of it, then give its ``key``).
        schema: A dataclass (see the module docstring).
        where: The file the config came from, named in the error line.
        key: The key path of ``cfg`` in its file (``"study"``), prefixed to every key path reported.
        allow_missing: Whether a required key may stay ``???`` (missing until used, as in any config);
            false: a required key without a value is a failure too.

    Returns:
        A structured ``DictConfig``: the schema's defaults, the config's values over them, typed and checked.

    Raises:
        ConfigError: One line naming ``where`` and the key path of every failure.
    """
    merged, problems = schema_problems(cfg, schema, key=key, allow_missing=allow_missing)
    if problems:
        raise problems_error(problems, where)
    return merged


def schema_problems(
    cfg: DictConfig | Mapping[str, Any], schema: type[Any], key: str = "", allow_missing: bool = False
) -> tuple[DictConfig, list[Problem]]:
    """The merged config and every :class:`Problem` of ``cfg`` against ``schema`` (empty when it fits).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Point:
        ...     x: float = 0.0
        >>> [p.line() for p in schema_problems({"x": float("nan"), "y": 1}, Point)[1]]
        ["y: unknown key 'y'", 'x: nan is not a finite number']
    """
    if not dataclasses.is_dataclass(schema):
        raise TypeError(f"schema must be a dataclass, not {schema!r}")
    merged = OmegaConf.structured(schema)
    problems: list[Problem] = []
    source = cfg if isinstance(cfg, DictConfig) else _as_config(cfg, key, problems)
    if problems:
        return merged, problems
    from core.config.resolvers import register_resolvers

    register_resolvers()
    eager = source._get_parent() is not None  # a node of a larger config: its interpolations point outside
    _fill(merged, source, key, problems, eager)
    _check_values(merged, key, problems, allow_missing)
    return merged, _unique(problems)


def problems_error(problems: Sequence[Problem], where: str) -> ConfigError:
    """One ``ConfigError`` line for ``problems``: the key path in ``where`` for one, all of them listed for more."""
    if len(problems) == 1:
        problem = problems[0]
        return ConfigError(
            problem.message,
            where=f"{where}: {problem.key}" if problem.key else where,
            hint=problem.hint or "fix this key",
        )
    listed = "; ".join(_with_hint(p) for p in problems[:_MAX_LISTED])
    more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    return ConfigError(f"{len(problems)} problems: {listed}{more}", where=where, hint="fix these keys")


# -- filling the schema with the config's values -----------------------------------------------------------------


def _fill(target: DictConfig, source: DictConfig, path: str, problems: list[Problem], eager: bool) -> None:
    schema_class = _object_type(target)
    open_keys = schema_class is None or bool(getattr(schema_class, "open_keys", False))
    known = [str(k) for k in target] if schema_class is not None else []
    for name in source:
        key = str(name)
        key_path = _join(path, key)
        if schema_class is not None and key not in known:
            if not open_keys:
                problems.append(_unknown(key, key_path, known))
                continue
            if difflib.get_close_matches(key, known, n=1, cutoff=_OPEN_TYPO_CUTOFF):
                problems.append(_unknown(key, key_path, known))  # an open node still refuses a near miss
                continue
        raw = _raw(source, key, key_path, problems, eager)
        if raw is _FAILED:
            continue
        child = target._get_node(key) if key in target else None
        child_type = _child_schema(target, key, child)
        if isinstance(raw, DictConfig) and child_type is not None:
            if child is None or not isinstance(child, DictConfig) or child._is_none() or child._is_missing():
                try:
                    with open_dict(target):
                        target[key] = _empty_node(child_type)
                except OmegaConfBaseException as exc:
                    problems.append(Problem(key_path, _message(exc)))
                    continue
            node = target[key]
            assert isinstance(node, DictConfig)
            _fill(node, raw, key_path, problems, eager)
            continue
        value = OmegaConf.to_container(raw, resolve=eager) if isinstance(raw, DictConfig | ListConfig) else raw
        try:
            if key in target:
                target[key] = value
            else:
                with open_dict(target):
                    target[key] = value
        except OmegaConfBaseException as exc:
            problems.append(Problem(key_path, _message(exc, value), _field_doc(schema_class, key)))


_FAILED = object()


def _raw(source: DictConfig, key: str, key_path: str, problems: list[Problem], eager: bool) -> Any:
    """The value of ``source[key]``: an interpolation stays a string until the check, unless ``eager`` (the
    config is a node of a larger one, whose other keys it may point to): then it is resolved here."""
    node = source._get_node(key)
    if node is None:  # pragma: no cover - keys() only lists present keys
        return _FAILED
    if eager and node._is_interpolation():
        try:
            return source[key]
        except (OmegaConfBaseException, UserError) as exc:
            problems.append(Problem(key_path, _message(exc)))
            return _FAILED
    if isinstance(node, DictConfig | ListConfig):
        if node._is_none():
            return None
        if node._is_missing():
            return MISSING
        if node._is_interpolation():
            return node._value()
        return node
    return node._value()


def _child_schema(target: DictConfig, key: str, child: Any) -> type[Any] | str | None:
    """What a mapping under ``key`` is checked against: a dataclass, ``"dict"`` (any names), or None (as is)."""
    if key not in target:
        element = target._metadata.element_type
        if _object_type(target) is None and isinstance(element, type) and dataclasses.is_dataclass(element):
            return element
        return None
    if not isinstance(child, DictConfig):
        return None
    ref = child._metadata.ref_type
    if isinstance(ref, type) and dataclasses.is_dataclass(ref):
        return ref
    if _object_type(child) is None and getattr(ref, "__origin__", None) is dict:
        return "dict"
    return None


def _empty_node(child_type: type[Any] | str) -> Any:
    return {} if child_type == "dict" else OmegaConf.structured(child_type)


# -- checking the merged values -----------------------------------------------------------------------------------


def _check_values(node: DictConfig, path: str, problems: list[Problem], allow_missing: bool) -> None:
    schema_class = _object_type(node)
    fields = {f.name: f for f in dataclasses.fields(schema_class)} if schema_class is not None else {}
    failed_here = False
    for name in node:
        key = str(name)
        key_path = _join(path, key)
        if any(p.key == key_path for p in problems):  # already wrong in type: one line per key
            failed_here = True
            continue
        if OmegaConf.is_missing(node, key):
            if key in fields and not allow_missing:
                problems.append(Problem(key_path, "is required and has no value", "set it in the file or override it"))
                failed_here = True
            continue
        try:
            value = node[key]
        except (OmegaConfBaseException, UserError) as exc:
            problems.append(Problem(key_path, _message(exc)))
            failed_here = True
            continue
        spec = fields.get(key)
        if spec is not None and spec.metadata.get("target") and value is not None:
            before = len(problems)
            problems.extend(target_problems(value, key_path))
            failed_here |= len(problems) > before
            continue
        if isinstance(value, DictConfig):
            _check_values(value, key_path, problems, allow_missing)
            continue
        before = len(problems)
        _check_range(value, spec, _declared_type(node, key), key_path, problems)
        failed_here |= len(problems) > before
    check: Callable[[Any], Iterable[tuple[str, ...]]] | None = getattr(schema_class, "problems", None)
    if check is not None and not failed_here and not any(_under(p.key, path) for p in problems):
        try:
            for key, message, *hint in check(node) or ():
                problems.append(Problem(_join(path, key), message, hint[0] if hint else None))
        except (OmegaConfBaseException, UserError) as exc:
            problems.append(Problem(path, _message(exc)))


def _check_range(
    value: Any, spec: dataclasses.Field[Any] | None, declared: Any, key_path: str, problems: list[Problem]
) -> None:
    meta: Mapping[str, Any] = spec.metadata if spec is not None else {}
    doc = meta.get("doc") or None
    values = list(value) if isinstance(value, ListConfig) else [value]
    finite = meta.get("finite", True)
    for item in values:
        if isinstance(item, float) and finite and not math.isfinite(item) and _is_float_type(declared):
            problems.append(Problem(key_path, f"{item} is not a finite number", doc))
            return
    choices = meta.get("choices")
    if choices is not None and value is not None and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f"did you mean {close[0]}?" if close else f"one of {', '.join(map(str, choices))}"
        problems.append(Problem(key_path, f"{value!r} is not one of {', '.join(map(str, choices))}", hint))
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    limits: list[tuple[str, Callable[[float, float], bool], str]] = [
        ("ge", lambda v, b: v >= b, "below the minimum"),
        ("gt", lambda v, b: v > b, "not above"),
        ("le", lambda v, b: v <= b, "above the maximum"),
        ("lt", lambda v, b: v < b, "not below"),
    ]
    for name, holds, words in limits:
        bound = meta.get(name)
        if bound is not None and not holds(value, bound):
            problems.append(Problem(key_path, f"{value} is {words} {bound}", doc))
            return


def _declared_type(node: DictConfig, key: str) -> Any:
    child = node._get_node(key)
    return child._metadata.ref_type if child is not None else Any


def _is_float_type(declared: Any) -> bool:
    if declared is float:
        return True
    args = getattr(declared, "__args__", ()) or ()
    return float in args or any(_is_float_type(a) for a in args if a is not type(None))


# -- the arguments of a _target_ ----------------------------------------------------------------------------------

_HYDRA_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")


def target_problems(node: Any, key: str = "") -> list[Problem]:
    """Every :class:`Problem` of a ``_target_`` node against the signature of the object it names.

    The target must import; each argument must be one its signature takes (unless it takes ``**kwargs``), with
    the nearest named otherwise; an argument annotated ``int``, ``float``, ``bool``, ``str``, a ``Literal``, an
    ``Optional``/union of these, a list or a mapping must have that type (a nested ``_target_`` node, or an
    annotation of another kind, passes: the object checks it); arguments without a default must be given
    (unless ``_partial_`` or ``_args_``). Interpolations are resolved first.

    Example:
        >>> [p.line() for p in target_problems({"_target_": "fractions.Fraction", "numerator": "x", "denom": 2})]
        ["denom: unknown argument 'denom' of fractions.Fraction"]
        >>> [p.line() for p in target_problems({"_target_": "core.config.schema.option", "ge": "low"}, "x")]
        ["x.ge: 'low' is not a number or None (an argument of core.config.schema.option)"]
    """
    from core.config.instantiate import locate

    data = _plain(node)
    if data is _FAILED:
        return []  # an interpolation that fails is reported where the config is resolved
    if not isinstance(data, Mapping):
        return [Problem(key, f"{_short(data)} is not a _target_ mapping", "e.g. {_target_: package.module.Name}")]
    dotted = data.get("_target_")
    target_key = _join(key, "_target_")
    if not isinstance(dotted, str) or not dotted:
        return [Problem(target_key, "is required here: the dotted path of what to build", "e.g. package.module.Name")]
    try:
        found = locate(dotted)
    except (ImportError, AttributeError) as exc:
        return [Problem(target_key, f"_target_ {dotted!r} does not import: {exc}", "check the dotted path")]
    try:
        signature = inspect.signature(found)
    except (TypeError, ValueError):  # a builtin without a signature: it checks its own arguments
        return []
    try:
        hints = typing.get_type_hints(found.__init__ if inspect.isclass(found) else found)
    except Exception:  # an annotation that names what its module imports only for type checkers
        hints = {}
    parameters = {
        name: p
        for name, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    problems = []
    for name, value in data.items():
        name = str(name)
        if name in _HYDRA_KEYS:
            continue
        if name not in parameters:
            if not takes_any:
                close = difflib.get_close_matches(name, list(parameters), n=1, cutoff=0.6)
                hint = f"did you mean {_join(key, close[0])}?" if close else f"it takes {', '.join(parameters)}"
                problems.append(Problem(_join(key, name), f"unknown argument {name!r} of {dotted}", hint))
            continue
        annotation = hints.get(name, inspect.Parameter.empty)
        if value is None and parameters[name].default is None:
            continue  # a None default is a None value, whatever the annotation says
        if not _fits(value, annotation):
            message = f"{_short(value)} is not {_describe(annotation)} (an argument of {dotted})"
            problems.append(Problem(_join(key, name), message))
    if not data.get("_partial_") and "_args_" not in data:
        for name, parameter in parameters.items():
            if parameter.default is inspect.Parameter.empty and name not in data:
                problems.append(Problem(_join(key, name), f"is required by {dotted} and has no value"))
    return problems


def _plain(node: Any) -> Any:
    if not isinstance(node, DictConfig | ListConfig):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except (OmegaConfBaseException, UserError):
        return _FAILED


def _fits(value: Any, annotation: Any) -> bool:
    """Whether a config value (plain YAML data) has the type ``annotation`` names, as far as YAML can say."""
    from pathlib import PurePath

    if isinstance(value, Mapping) and "_target_" in value:
        return True  # built by instantiate: the object checks it
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return True
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits(value, a) for a in arguments)
    if origin is typing.Literal:
        return value in arguments
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return isinstance(value, str)
    kind = origin or annotation
    if kind in (list, tuple, Sequence, typing.Sequence):
        if not isinstance(value, list | tuple) or isinstance(value, str):
            return False
        element = arguments[0] if arguments and (kind is not tuple or arguments[-1] is Ellipsis) else Any
        return all(_fits(v, element) for v in value)
    if kind in (dict, Mapping, typing.Mapping):
        return isinstance(value, Mapping)
    return True  # a class, a callable, ...: the object checks it


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_describe(a) for a in arguments)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, arguments))
    if annotation is type(None):
        return "None"
    words = {int: "an int", float: "a number", bool: "a boolean (true/false)", str: "a string"}
    if annotation in words:
        return words[annotation]
    kind = origin or annotation
    if kind in (list, tuple, Sequence, typing.Sequence):
        return "a list" + (f" of {_describe(arguments[0])}" if arguments and arguments[0] is not Ellipsis else "")
    if kind in (dict, Mapping, typing.Mapping):
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


# -- helpers ------------------------------------------------------------------------------------------------------


def _object_type(node: DictConfig) -> type[Any] | None:
    kind = node._metadata.object_type
    return kind if kind is not None and dataclasses.is_dataclass(kind) else None


def _field_doc(schema_class: type[Any] | None, key: str) -> str | None:
    if schema_class is None:
        return None
    for spec in dataclasses.fields(schema_class):
        if spec.name == key:
            return spec.metadata.get("doc") or None
    return None


def _unknown(key: str, key_path: str, known: Sequence[str]) -> Problem:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {_join(key_path.rpartition('.')[0], close[0])}?" if close else None
    if hint is None and known:
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        hint = f"known keys here: {shown}"
    return Problem(key_path, f"unknown key {key!r}", hint)


_OC_VALUE = re.compile(r"Value '(?P<value>.*)' of type '\w+' could not be converted to (?P<type>\w+)", re.S)
_WRONG_TYPE = re.compile(r"Invalid type assigned: \w+ is not a subclass of (?P<expected>[\w\[\], ]+)")
_NOT_DICT = re.compile(r"Cannot assign \w+ to Dict\[")
_NOT_LIST = re.compile(r"Invalid value assigned: \w+ is not a ListConfig, list or tuple")
_NOT_OPTIONAL = re.compile(r"(field|Non optional field) '?[\w.]*'? (is not Optional|cannot be assigned None)")
_TYPE_WORDS = {"Integer": "an int", "Float": "a number", "Boolean": "a boolean (true/false)", "String": "a string"}


def _message(exc: BaseException, value: Any = None) -> str:
    text = str(exc).split("\n")[0].strip()
    match = _OC_VALUE.search(text)
    if match:
        return f"{match['value']!r} is not {_TYPE_WORDS.get(match['type'], match['type'])}"
    text = re.sub(r"^\w*Error raised while resolving interpolation: ", "", text)
    wrong = _WRONG_TYPE.match(text)
    if wrong:
        expected = "a mapping" if wrong["expected"].startswith(("Dict", "dict")) else f"a {wrong['expected']} mapping"
        return f"{_short(value)} is not {expected}" if value is not None else f"expected {expected}"
    if _NOT_DICT.match(text):
        return f"{_short(value)} is not a mapping" if value is not None else "expected a mapping"
    if _NOT_LIST.match(text):
        return f"{_short(value)} is not a list" if value is not None else "expected a list"
    optional = _NOT_OPTIONAL.match(text)
    if optional:
        return "may not be null"
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _with_hint(problem: Problem) -> str:
    return f"{problem.line()} ({problem.hint})" if problem.hint else problem.line()


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for problem in problems:
        if (problem.key, problem.message) not in seen:
            seen.add((problem.key, problem.message))
            kept.append(problem)
    return kept


def _as_config(cfg: Mapping[str, Any], key: str, problems: list[Problem]) -> DictConfig:
    try:
        return OmegaConf.create(dict(cfg))
    except OmegaConfBaseException as exc:
        problems.append(Problem(key, _message(exc)))
        return OmegaConf.create({})


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _under(key_path: str, path: str) -> bool:
    return not path or key_path == path or key_path.startswith(path + ".")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path and key else (path or key)


def enum_names(kind: type[Enum]) -> list[str]:
    """The names of an ``Enum``, for an error message or a ``choices=`` list.

    Example:
        >>> import enum
        >>> enum_names(enum.Enum("Mode", "min max"))
        ['min', 'max']
    """
    return [member.name for member in kind]


__all__ = [
    "Problem",
    "bounds",
    "check_config",
    "enum_names",
    "option",
    "problems_error",
    "schema_problems",
    "target_problems",
]
