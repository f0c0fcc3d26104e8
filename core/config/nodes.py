"""Reading a node of a loaded config as plain Python data.

Code that takes a node apart (a dataclass's ``from_dict``, ``**kwargs`` for a constructor, ``.pop`` of a few keys)
wants a ``dict[str, Any]``, not a ``DictConfig``; :func:`as_dict` gives one, and a node of the wrong kind (a list
or a scalar where a mapping belongs, e.g. ``scene: 3``) is one :class:`~core.errors.ConfigError` line naming the key
path, not an ``AssertionError`` or an ``AttributeError`` further on.
"""

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from core.config.loader import shorten
from core.errors import ConfigError


def as_dict(node: Any, *, where: str, hint: str | None = None, resolve: bool = True) -> dict[str, Any]:
    """The mapping ``node`` as a plain dict with ``str`` keys, its interpolations resolved (unless ``resolve`` is
    false); nested nodes become plain dicts and lists too.

    Args:
        node: A ``DictConfig`` (or a plain mapping, copied as it is).
        where: The key path (or file) of ``node``, for the error line.
        hint: What to do when ``node`` is not a mapping, for the error line.
        resolve: Resolve interpolations (``${...}``); false keeps them as written.

    Raises:
        ConfigError: ``node`` is a list, a scalar or ``None``.

    Example:
        >>> from omegaconf import OmegaConf
        >>> cfg = OmegaConf.create({"n": 4, "model": {"width": "${n}", "layers": [8, 8]}, "seeds": [0, 1]})
        >>> as_dict(cfg.model, where="model")
        {'width': 4, 'layers': [8, 8]}
        >>> as_dict(cfg.model, where="model", resolve=False)
        {'width': '${n}', 'layers': [8, 8]}
        >>> as_dict(cfg.seeds, where="seeds", hint="e.g. seeds: {train: 0}")
        Traceback (most recent call last):
        ...
        core.errors.ConfigError: must be a mapping, not a list (seeds) — e.g. seeds: {train: 0}
    """
    if isinstance(node, DictConfig):
        if node._is_none() or node._is_missing():  # a typed node set to null or ???
            raise ConfigError(f"must be a mapping, not {'None' if node._is_none() else '???'}", where=where, hint=hint)
        container = OmegaConf.to_container(node, resolve=resolve)
        assert isinstance(container, dict)  # any other DictConfig becomes a dict
        return {str(key): value for key, value in container.items()}
    if isinstance(node, Mapping):
        return {str(key): value for key, value in node.items()}
    found = "a list" if isinstance(node, ListConfig | list | tuple) else shorten(repr(node), 80)
    raise ConfigError(f"must be a mapping, not {found}", where=where, hint=hint)
