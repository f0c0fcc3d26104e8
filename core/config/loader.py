"""Load a YAML config: ``_base_`` inheritance, ``_inherit_`` within the tree, dotlist overrides, validation.

The pipeline, in order:

1. read the file (YAML syntax errors name the line and column);
2. ``_base_`` (a path or a list of paths, in any mapping of the file) loads those files, each with its own
   bases, and merges them under that mapping; later bases win over earlier ones and the file wins over all.
   Relative paths are relative to the including file; ``${pkg:core.jobs.config}/slurm.yaml`` names a bundled
   file. A missing base or a cycle is an error that names the chain of files;
3. ``_inherit_: ${other.node}`` (or a list of them) merges other nodes of the same tree into a node; the node's
   own keys win;
4. overrides ``key.sub=value`` (the key must exist), ``+key=value`` (adds a new key), ``++key=value`` (sets,
   adding if needed), ``~key`` (deletes) are applied last;
5. every interpolation is resolved once, so a missing key or a refused ``eval`` fails here, not mid-run.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import GrammarParseError, OmegaConfBaseException

from core.config.resolvers import register_resolvers
from core.errors import ConfigError, UserError

BASE_KEY = "_base_"
INHERIT_KEY = "_inherit_"
SCHEMA_KEY = "_schema_"

_PATH_INTERPOLATION = re.compile(r"\$\{path:")
_NODE_INTERPOLATION = re.compile(r"\$\{(?P<key>[^${}:]+)\}")


def load_config(path: str | Path, overrides: Sequence[str] = (), schema: type[Any] | None = None) -> DictConfig:
    """Load ``path`` with its bases, inherited nodes and overrides, and check every interpolation.

    Args:
        path: A YAML file whose top level is a mapping.
        overrides: Overrides in Hydra's grammar, applied last: ``key=value``, ``+new=value``, ``++key=value``,
            ``~key``; see :func:`apply_overrides`.
        schema: A dataclass (see :mod:`core.config.schema`): its defaults go under the file, before the
            overrides, and the result is checked against it. A file can name its own with a top-level
            ``_schema_: dotted.Name`` (usually in the base every config of a family extends).

    Returns:
        The merged config; interpolations stay lazy (``${now:}`` and ``${eval:}`` resolve on access).

    Raises:
        ConfigError: For any user mistake, as one line naming the file and key path.

    Example:
        >>> from core.config.resolvers import package_dir
        >>> cfg = load_config(package_dir("core.config") / "examples" / "demo.yaml", ["model.alpha=0.5"])
        >>> cfg.model.alpha
        0.5
    """
    register_resolvers()
    where = str(path)
    try:
        file = Path(path).expanduser().resolve()
    except (RuntimeError, ValueError, OSError) as exc:  # ~nosuchuser, an embedded NUL
        raise ConfigError(f"bad config path: {exc}", where=where, hint="check the path") from None
    try:
        tree = _load_tree(file)
        tree = _resolve_inherits(tree, where)
        named = tree.pop(SCHEMA_KEY, None)
        if schema is None and named is not None:
            schema = _locate_schema(named, where)
        if schema is not None:
            defaults = OmegaConf.to_container(OmegaConf.structured(schema), resolve=False, enum_to_str=True)
            tree = _to_tree(OmegaConf.merge(OmegaConf.create(defaults), OmegaConf.create(tree)))
        tree = apply_overrides(tree, overrides, where)
        cfg = OmegaConf.create(tree)
    except OmegaConfBaseException as exc:  # e.g. an interpolation that does not parse
        raise config_error_from(exc, where) from None
    except RecursionError:
        raise ConfigError(
            "config nested too deeply", where=where, hint=f"keep nesting under {MAX_DEPTH} levels"
        ) from None
    if schema is not None:
        from core.config.schema import check_config

        cfg = check_config(cfg, schema, where=where)
    validate(cfg, where)
    return cfg


def _locate_schema(name: Any, where: str) -> type[Any]:
    """The dataclass a config's top-level ``_schema_: dotted.Name`` names."""
    import dataclasses

    from core.config.instantiate import locate

    if not isinstance(name, str) or not name:
        raise ConfigError("_schema_ must be the dotted name of a dataclass", where=f"{where}: {SCHEMA_KEY}")
    try:
        found = locate(name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"_schema_ {name!r} does not import: {exc}", where=f"{where}: {SCHEMA_KEY}", hint="check the dotted path"
        ) from None
    if not (isinstance(found, type) and dataclasses.is_dataclass(found)):
        raise ConfigError(f"_schema_ {name!r} is not a dataclass", where=f"{where}: {SCHEMA_KEY}")
    return found


def validate(cfg: DictConfig, where: str) -> None:
    """Resolve every interpolation once; raise a one-line ``ConfigError`` naming the key path on failure."""
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        raise config_error_from(exc, where) from None
    except RecursionError:  # an interpolation chain deeper than Python's stack
        raise ConfigError("interpolations nested too deeply", where=where, hint="shorten the ${...} chain") from None


def config_error_from(exc: OmegaConfBaseException, where: str) -> ConfigError:
    """Turn an OmegaConf exception into one ``ConfigError`` line with the key path."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, UserError) and not isinstance(exc, GrammarParseError):  # a resolver's own one line
        key = getattr(exc, "full_key", None)
        place = f"{where}: {key}" if key else where
        return ConfigError(cause.what, where=f"{place}, {cause.where}" if cause.where else place, hint=cause.hint)
    message = str(exc).split("\n")[0]
    message = re.sub(r"^\w*Error raised while resolving interpolation: ", "", message)
    key = getattr(exc, "full_key", None)
    hint = None
    if "not found" in message:
        hint = "check the key path it points to"
    elif isinstance(exc, GrammarParseError):
        hint = "quote resolver arguments that hold ( ) [ ] or quotes: ${eval:'max(1, 2)'}"
    return ConfigError(shorten(message), where=f"{where}: {key}" if key else where, hint=hint)


def shorten(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters (a huge value must not flood the one error line).

    Example:
        >>> shorten("x" * 1000, 10)
        'xxxxxxx...'
    """
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- step 1 and 2: files and bases ---------------------------------------------------------------------------

MAX_FILE_BYTES = 16 * 1024 * 1024  # a config, not a data set
MAX_NODES = 100_000  # after alias expansion: a 2 KB alias bomb expands to billions
MAX_DEPTH = 64  # OmegaConf recurses per level; deeper trees hit Python's stack
MAX_FILES = 2_000  # files in one _base_ graph


def _load_tree(root: Path) -> dict[str, Any]:
    """Load ``root`` and its ``_base_`` files, bases first, with an explicit stack (a chain of any length)."""
    raw: dict[Path, dict[str, Any]] = {}
    done: dict[Path, dict[str, Any]] = {}
    stack: list[tuple[Path, tuple[Path, ...]]] = [(root, ())]
    while stack:
        file, chain = stack[-1]
        if file in done:
            stack.pop()
            continue
        if file not in raw:
            _check_readable(file, chain)
            if len(raw) >= MAX_FILES:
                raise ConfigError(
                    f"more than {MAX_FILES} files in the _base_ graph", where=str(file), hint="flatten the bases"
                )
            raw[file] = _anchor_paths(_read_yaml(file), file.parent)
        pending = []
        for base in _base_files(raw[file], file):
            if base in done:
                continue
            if base == file or base in chain:
                cycle_from = (*chain, file)
                start = cycle_from.index(base)
                cycle = " → ".join(p.name for p in (*cycle_from[start:], base))
                raise ConfigError(f"_base_ cycle: {cycle}", where=str(file), hint="remove one of these _base_ entries")
            pending.append(base)
        if pending:
            stack.extend((base, (*chain, file)) for base in reversed(pending))
            continue
        expanded = _expand_bases(raw[file], file, done, key_path="")
        assert isinstance(expanded, dict)
        done[file] = expanded
        stack.pop()
    return done[root]


def _check_readable(file: Path, chain: tuple[Path, ...]) -> None:
    included = f", included from {chain[-1]}" if chain else ""
    try:
        if file.is_dir():
            raise ConfigError("the config path is a directory", where=f"{file}{included}", hint="give a YAML file")
        if not file.is_file():
            hint = "check the path" if file.parent.is_dir() else f"check the path: {file.parent} does not exist"
            raise ConfigError("config file not found", where=f"{file}{included}", hint=hint)
    except OSError as exc:  # e.g. a folder without search permission
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", where=f"{file}{included}") from None


def _base_files(node: Any, file: Path) -> list[Path]:
    """The files the ``_base_`` entries anywhere in ``node`` name, in order (iterative walk)."""
    found: list[Path] = []
    todo: list[tuple[Any, str]] = [(node, "")]
    while todo:
        item, key_path = todo.pop()
        if isinstance(item, dict):
            if BASE_KEY in item:
                for entry in _base_entries(item[BASE_KEY], file, _join(key_path, BASE_KEY)):
                    found.append(_base_path(entry, file))
            todo.extend((v, _join(key_path, k)) for k, v in item.items() if k != BASE_KEY)
        elif isinstance(item, list):
            todo.extend((v, f"{key_path}[{i}]") for i, v in enumerate(item))
    return found


def _base_entries(bases: Any, file: Path, key_path: str) -> list[str]:
    entries = bases if isinstance(bases, list) else [bases]
    if not entries or not all(isinstance(e, str) and e for e in entries):
        raise ConfigError("_base_ must be a path or a list of paths", where=f"{file}: {key_path}")
    return entries


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                f"config file too large ({size} bytes, at most {MAX_FILE_BYTES})",
                where=str(file),
                hint="a config describes data, it does not hold it",
            )
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read config: {reason}", where=str(file)) from None
    _check_size(text, str(file))
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"YAML syntax error: {problem}", where=f"{file}, {position}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {shorten(str(exc))}", where=str(file)) from None
    except RecursionError:  # pragma: no cover - _check_size bounds the depth first
        raise ConfigError("YAML nested too deeply", where=str(file)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"the top level of a config must be a mapping, not a {type(data).__name__}", where=str(file))
    return data


def _check_size(text: str, where: str) -> None:
    """Refuse YAML nested deeper than ``MAX_DEPTH`` or larger than ``MAX_NODES`` once aliases are expanded.

    Reads the event stream (libyaml when available: fast and not recursive) before anything is built.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # [anchor, expanded size] per open collection
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                stack.append([event.anchor, 1])
                if len(stack) - 1 > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else "?"
                    raise ConfigError(
                        f"YAML nested deeper than {MAX_DEPTH} levels",
                        where=f"{where}, line {line}",
                        hint="flatten the config",
                    )
                continue
            if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                anchor, size = stack.pop()
            elif isinstance(event, yaml.ScalarEvent):
                anchor, size = event.anchor, 1
            elif isinstance(event, yaml.AliasEvent):
                anchor, size = None, sizes.get(str(event.anchor), 1)
            else:
                continue
            if anchor is not None:
                sizes[str(anchor)] = size
            stack[-1][1] += size
            if stack[0][1] > MAX_NODES or size > MAX_NODES:
                raise ConfigError(
                    f"YAML expands to more than {MAX_NODES} values (anchors and aliases included)",
                    where=where,
                    hint="a config this large is likely an alias bomb; write the values out",
                )
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" in str(exc):  # libyaml's own limit
            raise ConfigError(
                f"YAML nested deeper than {MAX_DEPTH} levels", where=where, hint="flatten the config"
            ) from None
        return  # the loader reports syntax errors with their line and column
    except yaml.YAMLError as exc:  # libyaml's own limits, e.g. its maximum nesting depth
        raise ConfigError(f"YAML error: {shorten(str(exc).splitlines()[0])}", where=where) from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 as a float (YAML 1.1 wants 1.0e-3) and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key ([1]: x, {a: 1}: x)
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain value, not a list or mapping", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.[\d_]*)?[eE][-+]?\d+$|^[-+]?\d[\d_]*\.[\d_]*$|^[-+]?\.[\d_]+$"),
    list("-+0123456789."),
)


def _anchor_paths(node: Any, folder: Path) -> Any:
    """Rewrite ``${path:rel}`` to ``${path:'<folder of this file>',rel}`` so it survives merging."""
    if isinstance(node, dict):
        return {k: _anchor_paths(v, folder) for k, v in node.items()}
    if isinstance(node, list):
        return [_anchor_paths(v, folder) for v in node]
    if isinstance(node, str) and "${path:" in node:
        quoted = str(folder).replace("\\", "\\\\").replace("'", "\\'")
        return _PATH_INTERPOLATION.sub(lambda _: f"${{path:'{quoted}',", node)
    return node


def _expand_bases(node: Any, file: Path, done: dict[Path, dict[str, Any]], key_path: str) -> Any:
    """Merge the (already expanded) bases under each mapping of ``node`` that names them."""
    if isinstance(node, list):
        return [_expand_bases(v, file, done, f"{key_path}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    own = {k: _expand_bases(v, file, done, _join(key_path, k)) for k, v in node.items() if k != BASE_KEY}
    if BASE_KEY not in node:
        return own
    entries = _base_entries(node[BASE_KEY], file, _join(key_path, BASE_KEY))
    layers = [done[_base_path(entry, file)] for entry in entries]
    merged = OmegaConf.merge(*(OmegaConf.create(layer) for layer in layers), OmegaConf.create(own))
    return _to_tree(merged)


def _to_tree(cfg: Any) -> dict[str, Any]:
    tree = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    assert isinstance(tree, dict)
    return {str(k): v for k, v in tree.items()}


def _base_path(entry: str, file: Path) -> Path:
    if "${" in entry:
        try:
            entry = str(OmegaConf.create({"base": entry}).base)
        except OmegaConfBaseException as exc:
            raise config_error_from(exc, f"{file}: {BASE_KEY}") from None
    try:
        base = Path(entry).expanduser()
        return (base if base.is_absolute() else file.parent / base).resolve()
    except (RuntimeError, ValueError, OSError) as exc:
        raise ConfigError(f"bad _base_ path {entry!r}: {exc}", where=f"{file}: {BASE_KEY}") from None


# -- step 3: _inherit_ -----------------------------------------------------------------------------------------


def _resolve_inherits(tree: dict[str, Any], where: str) -> dict[str, Any]:
    done: set[tuple[str | int, ...]] = set()

    def node_at(path: tuple[str | int, ...]) -> Any:
        node: Any = tree
        for part in path:
            node = node[part]
        return node

    def resolve(path: tuple[str | int, ...], stack: tuple[tuple[str | int, ...], ...]) -> None:
        if path in done:
            return
        if path in stack:
            cycle = " → ".join(_format_path(p) for p in (*stack[stack.index(path) :], path))
            raise ConfigError(f"_inherit_ cycle: {cycle}", where=where)
        node = node_at(path)
        if not isinstance(node, dict) or INHERIT_KEY not in node:
            done.add(path)
            return
        sources = node[INHERIT_KEY] if isinstance(node[INHERIT_KEY], list) else [node[INHERIT_KEY]]
        layers = []
        for source in sources:
            source_path = _inherit_source(source, path, where)
            try:
                source_node = node_at(source_path)
            except (KeyError, IndexError, TypeError):
                raise ConfigError(
                    f"_inherit_ points to a missing node {source!r}",
                    where=f"{where}: {_format_path((*path, INHERIT_KEY))}",
                    hint="name an existing mapping, e.g. _inherit_: ${defaults.model}",
                ) from None
            resolve(source_path, (*stack, path))
            source_node = node_at(source_path)
            if not isinstance(source_node, dict):
                raise ConfigError(
                    f"_inherit_ must point to a mapping, {source!r} is a {type(source_node).__name__}",
                    where=f"{where}: {_format_path((*path, INHERIT_KEY))}",
                )
            layers.append(OmegaConf.create(source_node))
        own = OmegaConf.create({k: v for k, v in node.items() if k != INHERIT_KEY})
        merged = OmegaConf.to_container(OmegaConf.merge(*layers, own), resolve=False)
        parent = node_at(path[:-1])
        parent[path[-1]] = merged
        done.add(path)

    def walk(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, dict):
            if INHERIT_KEY in node:
                resolve(path, ())
                node = node_at(path)
            for key in list(node):
                walk(node[key], (*path, key))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, (*path, index))

    if INHERIT_KEY in tree:
        raise ConfigError("_inherit_ is not allowed at the top level", where=where, hint="use _base_ there")
    walk(tree, ())
    return tree


def _inherit_source(source: Any, path: tuple[str | int, ...], where: str) -> tuple[str | int, ...]:
    text = source if isinstance(source, str) else ""
    match = _NODE_INTERPOLATION.fullmatch(text.strip())
    key = match["key"].strip() if match else text.strip()
    if not key:
        raise ConfigError(
            f"_inherit_ must name a node, got {source!r}",
            where=f"{where}: {_format_path((*path, INHERIT_KEY))}",
            hint="write _inherit_: ${other.node}",
        )
    dots = len(key) - len(key.lstrip("."))
    parts = _key_parts(key.lstrip("."))
    if dots == 0:
        return parts
    if dots - 1 > len(path):
        raise ConfigError(
            f"_inherit_ {source!r} goes up {dots - 1} levels from a node {len(path)} deep",
            where=f"{where}: {_format_path((*path, INHERIT_KEY))}",
            hint="use fewer dots, or an absolute key: ${models.base}",
        )
    base = path[: len(path) - (dots - 1)]
    return (*base, *parts)


# -- step 4: overrides in Hydra's grammar -----------------------------------------------------------------------

MAX_OVERRIDE_CHARS = 100_000
_KEY_HEAD = re.compile(r"(?P<prefix>\+\+|\+|~)?(?P<key>[^=]*)(?P<rest>=.*)?", re.S)
_INDEX = re.compile(r"\[(\d+)\]")
_KEY_SYNTAX = re.compile(r"[A-Za-z_$][\w\-$]*(?:\.[\w\-$]+)*")


def apply_overrides(tree: dict[str, Any], overrides: Iterable[str], where: str) -> dict[str, Any]:
    """Apply overrides to a plain config tree (``load_config`` step 4). Returns the same tree.

    The grammar is Hydra's (its own parser reads each override): ``key=value`` (the key must exist; a mapping
    value merges into the node, as in Hydra), ``+key=value`` (adds a key), ``++key=value`` (sets, adding if
    needed), ``~key`` or ``~key=value`` (deletes). Values are Hydra's: ``[1,2]``, ``{user: alice}``, ``'a b'``,
    ``null``, ``1e-3``, ``${interpolation}``. On top of Hydra: a typo names the nearest key, and list items are
    addressed as ``lst[1]=x`` as well as ``lst.1=x`` (``+lst[2]=x`` appends). A sweep (``lr=1,2,3``,
    ``range(...)``, ``choice(...)``) is refused: one command runs one config.

    Example:
        >>> tree = {"db": {"user": "root", "port": 5432}, "lr": 0.1, "tags": ["a"]}
        >>> apply_overrides(tree, ["db={user: alice}", "lr=1e-3", "+tags[1]=b", "++seed=1"], "c.yaml")
        {'db': {'user': 'alice', 'port': 5432}, 'lr': 0.001, 'tags': ['a', 'b'], 'seed': 1}
        >>> apply_overrides(tree, ["lr=1,2,3"], "c.yaml")
        Traceback (most recent call last):
        ...
        core.errors.ConfigError: override 'lr=1,2,3' is a sweep of several values (c.yaml) — ...
    """
    for override in overrides:
        key, prefix, value = parse_override(override, where)
        _apply_one(tree, override, key, prefix, value, where)
    return tree


def parse_override(override: str, where: str = "override") -> tuple[str, str, Any]:
    """Read one override with Hydra's parser: ``(key with list indices as dots, prefix, value)``.

    The prefix is ``""``, ``"+"``, ``"++"`` or ``"~"``; the value is Hydra's (``None`` for a bare ``~key``).

    Example:
        >>> parse_override("db={user: alice}")
        ('db', '', {'user': 'alice'})
        >>> parse_override("+lst[2]=yes"), parse_override("name="), parse_override("~a")
        (('lst.2', '+', 'yes'), ('name', '', ''), ('a', '~', None))
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    text = override.strip() if isinstance(override, str) else ""
    head = _KEY_HEAD.fullmatch(text)
    prefix = (head["prefix"] or "") if head else ""
    key = _INDEX.sub(r".\1", head["key"].strip()) if head else ""
    if not text or head is None or not key or (prefix != "~" and head["rest"] is None):
        raise ConfigError(
            f"override {shorten(repr(override), 80)} is not key=value",
            where=where,
            hint="write key.sub=value, +new.key=value to add a key, ~key to delete one",
        )
    if not _KEY_SYNTAX.fullmatch(key):
        raise ConfigError(
            f"override {shorten(repr(override), 80)} has a key that is not a dotted path",
            where=where,
            hint="write key.sub=value (config groups key/name and @package are not used here)",
        )
    if len(text) > MAX_OVERRIDE_CHARS or _nesting(text) > MAX_DEPTH:
        raise ConfigError(
            f"override {shorten(repr(override), 80)} is too large or too deeply nested",
            where=where,
            hint=f"keep it under {MAX_OVERRIDE_CHARS} characters and {MAX_DEPTH} levels; put big values in a file",
        )
    rest = head["rest"] or ""
    try:
        parsed = _PARSER.get(OverridesParser).parse_override(f"{prefix}{key}{rest}")
    except HydraException as exc:
        problem = str(exc).split("\n")[0]
        problem = re.sub(r"^Error (parsing|when parsing) override '.*?'\s*", "", problem).strip() or "syntax error"
        raise ConfigError(
            f"override {shorten(repr(override), 80)} does not parse: {shorten(problem, 120)}",
            where=where,
            hint="quote values with special characters: key='a b, c' (Hydra's override grammar)",
        ) from None
    except RecursionError:
        raise ConfigError(f"override {shorten(repr(override), 80)} is nested too deeply", where=where) from None
    if parsed.is_sweep_override():
        raise ConfigError(
            f"override {shorten(repr(override), 80)} is a sweep of several values",
            where=where,
            hint="give one value, quote a value with commas (key='1,2,3'), or search with kakehashi hpo",
        )
    return key, prefix, parsed.value() if prefix != "~" or head["rest"] is not None else None


def literal_override(key: str, value: str | Sequence[str]) -> str:
    """An override that sets ``key`` to ``value`` exactly as written: strings stay strings, ``${...}`` stays text.

    For values that come from elsewhere than a person typing an override (a command after ``--``).

    Example:
        >>> text = literal_override("command", ["echo", "${oc.env:HOME}", "it's", "a\\\\"])
        >>> text
        "command=['echo', '\\\\${oc.env:HOME}', 'it\\\\'s', 'a\\\\\\\\']"
        >>> from omegaconf import OmegaConf
        >>> OmegaConf.to_container(OmegaConf.create({"c": parse_override(text)[2]}), resolve=True)["c"]
        ['echo', '${oc.env:HOME}', "it's", 'a\\\\']
    """
    items = [value] if isinstance(value, str) else list(value)
    quoted = [_quote(item) for item in items]
    return f"{key}={quoted[0]}" if isinstance(value, str) else f"{key}=[{', '.join(quoted)}]"


def _quote(text: str) -> str:
    """``text`` as a single-quoted value of Hydra's grammar that OmegaConf will not interpolate."""
    # OmegaConf's escape: \${ is a literal ${, and backslashes before it are doubled
    text = re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text)
    # Hydra: backslashes are literal unless they come before a quote (or the closing quote): double those
    text = re.sub(r"(\\+)(?='|\Z)", lambda m: m.group(1) * 2, text)
    return "'" + text.replace("'", "\\'") + "'"


class _ParserCache:
    """One Hydra ``OverridesParser`` per process (building one costs milliseconds)."""

    def __init__(self) -> None:
        self.parser: Any = None

    def get(self, kind: Any) -> Any:
        if self.parser is None:
            self.parser = kind.create()
        return self.parser


_PARSER = _ParserCache()


def _nesting(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]})":
            depth -= 1
    return deepest


def _apply_one(tree: dict[str, Any], override: str, key: str, prefix: str, value: Any, where: str) -> None:
    parts = _key_parts(key)
    parent = _walk_to_parent(tree, parts, override, where, create=prefix in ("+", "++"))
    last = parts[-1]
    exists = _has_child(parent, last)
    slot: Any = int(last) if isinstance(parent, list) else last
    if prefix == "~":
        if not exists:
            raise _unknown_key(parent, parts, override, where)
        if value is not None and parent[slot] != value:
            raise ConfigError(
                f"override {override!r} deletes only if the value is {value!r}, but it is {parent[slot]!r}",
                where=f"{where}: {key}",
                hint=f"write ~{key} to delete it whatever its value",
            )
        del parent[slot]
        return
    if prefix == "+" and exists and not isinstance(value, dict | list):
        raise ConfigError(
            f"override {override!r} adds a key that exists",
            where=f"{where}: {key}",
            hint=f"write {override[1:]} to change it, or +{override} to set it either way",
        )
    if prefix == "" and not exists:
        raise _unknown_key(parent, parts, override, where)
    if isinstance(parent, list):
        index = int(last)
        if index == len(parent):
            parent.append(value)
        elif index > len(parent):
            raise _unknown_key(parent, parts, override, where)
        else:
            parent[index] = _merged(parent[index], value, prefix, override, parts, where)
    else:
        parent[last] = _merged(parent.get(last), value, prefix, override, parts, where) if exists else value


def _merged(old: Any, new: Any, prefix: str, override: str, parts: tuple[str | int, ...], where: str) -> Any:
    """A mapping value merges into a mapping, as Hydra merges it; new keys inside need ``+``/``++`` (Hydra too)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    for key, value in new.items():
        if key not in old and prefix == "":
            raise _unknown_key(old, (*parts, key), override, where)
        old[key] = _merged(old.get(key), value, prefix, override, (*parts, key), where)
    return old


# -- step 4 helpers ---------------------------------------------------------------------------------------------


def _key_parts(key: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for piece in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    return tuple(parts)


def _has_child(parent: Any, part: str | int) -> bool:
    if isinstance(parent, list):
        return str(part).isdigit() and int(part) < len(parent)
    return isinstance(parent, dict) and part in parent


def _walk_to_parent(tree: dict[str, Any], parts: tuple[str | int, ...], override: str, where: str, create: bool) -> Any:
    node: Any = tree
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            index = int(part)
            if index >= len(node):
                raise _unknown_key(node, parts[: depth + 1], override, where)
            node = node[index]
        elif isinstance(node, dict):
            if part not in node:
                if not create:
                    raise _unknown_key(node, parts[: depth + 1], override, where)
                node[part] = {}
            node = node[part]
        else:
            raise ConfigError(
                f"override {override!r} goes inside a value that is not a mapping or list",
                where=f"{where}: {_format_path(parts[:depth])}",
            )
    if isinstance(node, list) and not str(parts[-1]).isdigit():
        raise ConfigError(
            f"override {override!r} indexes a list with {parts[-1]!r}",
            where=f"{where}: {_format_path(parts[:-1])}",
            hint="use a number",
        )
    if not isinstance(node, dict | list):
        raise ConfigError(
            f"override {override!r} goes inside a value that is not a mapping or list",
            where=f"{where}: {_format_path(parts[:-1])}",
        )
    return node


def _unknown_key(parent: Any, parts: tuple[str | int, ...], override: str, where: str) -> ConfigError:
    key = _format_path(parts)
    hint = f"write +{key}=... to add it"
    if isinstance(parent, dict):
        close = difflib.get_close_matches(str(parts[-1]), [str(k) for k in parent], n=1)
        if close:
            hint = f"did you mean {_format_path((*parts[:-1], close[0]))}? or write +{key}=... to add it"
    return ConfigError(f"override {override!r}: no key {key!r} in the config", where=where, hint=hint)


def _join(key_path: str, key: Any) -> str:
    return f"{key_path}.{key}" if key_path else str(key)


def _format_path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        index = isinstance(part, int) or (text and str(part).isdigit())  # lst.7 reads as lst[7]
        text += f"[{part}]" if index else (f".{part}" if text else str(part))
    return text
