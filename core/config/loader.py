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
from core.errors import ConfigError

BASE_KEY = "_base_"
INHERIT_KEY = "_inherit_"

_PATH_INTERPOLATION = re.compile(r"\$\{path:")
_OVERRIDE = re.compile(
    r"(?P<prefix>\+\+|\+|~)?(?P<key>[A-Za-z_][\w\-]*(?:\.[\w\-]+|\[\d+\])*)(?:=(?P<value>.*))?", re.S
)
_NODE_INTERPOLATION = re.compile(r"\$\{(?P<key>[^${}:]+)\}")


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Load ``path`` with its bases, inherited nodes and overrides, and check every interpolation.

    Args:
        path: A YAML file whose top level is a mapping.
        overrides: Dotlist overrides, applied last: ``key=value``, ``+new=value``, ``++key=value``, ``~key``.

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
    file = Path(path).expanduser().resolve()
    where = str(path)
    try:
        tree = _load_file(file, chain=())
        tree = _resolve_inherits(tree, where)
        tree = apply_overrides(tree, overrides, where)
        cfg = OmegaConf.create(tree)
    except OmegaConfBaseException as exc:  # e.g. an interpolation that does not parse
        raise config_error_from(exc, where) from None
    validate(cfg, where)
    return cfg


def apply_overrides(tree: dict[str, Any], overrides: Iterable[str], where: str) -> dict[str, Any]:
    """Apply dotlist overrides to a plain config tree (``load_config`` step 4). Returns the same tree."""
    for override in overrides:
        match = _OVERRIDE.fullmatch(override.strip())
        prefix = match["prefix"] if match else None
        if match is None or (prefix != "~" and match["value"] is None) or (prefix == "~" and match["value"]):
            raise ConfigError(
                f"override {override!r} is not key=value",
                where=where,
                hint="write key.sub=value, +new.key=value to add a key, ~key to delete one",
            )
        parts = _key_parts(match["key"])
        parent = _walk_to_parent(tree, parts, override, where, create=prefix in ("+", "++"))
        last = parts[-1]
        exists = _has_child(parent, last)
        if prefix == "~":
            if not exists:
                raise _unknown_key(parent, parts, override, where)
            del parent[int(last) if isinstance(parent, list) else last]
            continue
        if prefix == "+" and exists:
            raise ConfigError(
                f"override {override!r} adds a key that exists",
                where=f"{where}: {match['key']}",
                hint=f"write {match['key']}={match['value']} to change it",
            )
        if prefix is None and not exists:
            raise _unknown_key(parent, parts, override, where)
        value = _parse_value(match["value"], override, where)
        if isinstance(parent, list):
            index = int(last)
            if index == len(parent):
                parent.append(value)
            else:
                parent[index] = value
        else:
            parent[last] = value
    return tree


def validate(cfg: DictConfig, where: str) -> None:
    """Resolve every interpolation once; raise a one-line ``ConfigError`` naming the key path on failure."""
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        raise config_error_from(exc, where) from None


def config_error_from(exc: OmegaConfBaseException, where: str) -> ConfigError:
    """Turn an OmegaConf exception into one ``ConfigError`` line with the key path."""
    message = str(exc).split("\n")[0]
    message = re.sub(r"^\w*Error raised while resolving interpolation: ", "", message)
    key = getattr(exc, "full_key", None)
    hint = None
    if "not found" in message:
        hint = "check the key path it points to"
    elif isinstance(exc, GrammarParseError):
        hint = "quote resolver arguments that hold ( ) [ ] or quotes: ${eval:'max(1, 2)'}"
    return ConfigError(message, where=f"{where}: {key}" if key else where, hint=hint)


# -- step 1 and 2: files and bases ---------------------------------------------------------------------------


def _load_file(file: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    if file in chain:
        cycle = " → ".join(p.name for p in (*chain[chain.index(file) :], file))
        raise ConfigError(f"_base_ cycle: {cycle}", where=str(chain[-1]), hint="remove one of these _base_ entries")
    if not file.is_file():
        included = f", included from {chain[-1]}" if chain else ""
        raise ConfigError("config file not found", where=f"{file}{included}", hint="check the path")
    tree = _read_yaml(file)
    tree = _anchor_paths(tree, file.parent)
    expanded = _expand_bases(tree, file, (*chain, file), key_path="")
    assert isinstance(expanded, dict)
    return expanded


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", where=str(file)) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"YAML syntax error: {problem}", where=f"{file}, {position}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", where=str(file)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"the top level of a config must be a mapping, not a {type(data).__name__}", where=str(file))
    return data


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 as a float (YAML 1.1 wants 1.0e-3) and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
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


def _expand_bases(node: Any, file: Path, chain: tuple[Path, ...], key_path: str) -> Any:
    if isinstance(node, list):
        return [_expand_bases(v, file, chain, f"{key_path}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    own = {k: _expand_bases(v, file, chain, _join(key_path, k)) for k, v in node.items() if k != BASE_KEY}
    if BASE_KEY not in node:
        return own
    bases = node[BASE_KEY]
    entries = bases if isinstance(bases, list) else [bases]
    if not entries or not all(isinstance(e, str) and e for e in entries):
        raise ConfigError(
            "_base_ must be a path or a list of paths",
            where=f"{file}: {_join(key_path, BASE_KEY)}",
        )
    layers = [_load_file(_base_path(entry, file), chain) for entry in entries]
    merged = OmegaConf.merge(*(OmegaConf.create(layer) for layer in layers), OmegaConf.create(own))
    return OmegaConf.to_container(merged, resolve=False)


def _base_path(entry: str, file: Path) -> Path:
    if "${" in entry:
        try:
            entry = str(OmegaConf.create({"base": entry}).base)
        except OmegaConfBaseException as exc:
            raise config_error_from(exc, f"{file}: {BASE_KEY}") from None
    base = Path(entry).expanduser()
    return (base if base.is_absolute() else file.parent / base).resolve()


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
    base = path[: len(path) - (dots - 1)] if dots - 1 <= len(path) else ()
    return (*base, *parts)


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


def _parse_value(text: str, override: str, where: str) -> Any:
    try:
        parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={text}"]), resolve=False)
        assert isinstance(parsed, dict)
        return parsed["value"]
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        raise ConfigError(f"override {override!r} has a value that is not YAML: {exc}", where=where) from None


def _join(key_path: str, key: Any) -> str:
    return f"{key_path}.{key}" if key_path else str(key)


def _format_path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
