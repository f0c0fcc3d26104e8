"""The ``kakehashi`` command (alias ``kh``): ``kakehashi AREA VERB ...``.

Areas are plug-ins: each is a ``register(subparsers)`` function published under the package entry-point group
``kakehashi.areas`` (core's own areas the same way, in ``pyproject.toml``). ``register`` adds one area parser with
its verbs, each with ``set_defaults(handler=...)``; a handler takes the parsed arguments and returns the exit
status. A lab adds an area from its own package without touching core::

    [project.entry-points."kakehashi.areas"]
    mylab = "mylab.cli:register"

A :class:`~core.errors.UserError` anywhere prints one ``error:`` line and exits 2.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, NoReturn

from core import __version__
from core.errors import DependencyError, UserError

SubParsers = Any  # argparse._SubParsersAction[ArgumentParser]: private in the standard library
Handler = Callable[[argparse.Namespace], int | None]


class ArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one ``error:`` line, and whose help keeps its layout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} ({self.prog}) — see {self.prog} --help", file=sys.stderr)
        raise SystemExit(2)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``CFG`` positional and the ``key=value`` overrides every config-taking verb accepts.

    Overrides may come before or after option flags (``CFG a=1 --flag b=2``): :func:`main` gathers them.
    """
    parser.add_argument("config", metavar="CFG", help="YAML config file")
    add_override_arguments(parser)


def add_override_arguments(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """Add the ``KEY=VALUE`` overrides positional (Hydra's override grammar), accepted before or after flags."""
    parser.add_argument(
        "overrides",
        metavar="KEY=VALUE",
        nargs="*",
        help=help or "overrides (Hydra's grammar): key.sub=value, +new.key=value, ++key=value, ~key",
    )
    parser.set_defaults(overrides_anywhere=True)


def console(stderr: bool = False) -> Any:
    """The rich ``Console`` every verb prints tables and progress with: the terminal's width on a terminal, and
    a wide one when the output goes to a file or a pipe, so that tables are not cut at 80 columns."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=200)


def log_to(console: Any) -> Callable[[str], None]:
    """``log(line)`` for a verb's progress lines: each printed on ``console`` as written, so that a ``[word]`` in
    a config value or a path stays text rather than being read as console markup."""
    return lambda line: console.print(line, markup=False)


def add_area(areas: SubParsers, name: str, help: str, description: str) -> SubParsers:
    """Add the parser of one area (``kakehashi NAME``) and return its verb subparsers.

    ``kakehashi NAME`` alone prints the area's help.
    """
    area = areas.add_parser(name, help=help, description=description)

    def show_help(_: argparse.Namespace) -> int:
        area.print_help()
        return 2

    area.set_defaults(handler=show_help)
    return area.add_subparsers(title="verbs", metavar="VERB")


AREA_GROUP = "kakehashi.areas"


def area_entry_points() -> list[EntryPoint]:
    """The registered areas (entry-point group ``kakehashi.areas``), one per name, sorted by name.

    Example:
        >>> "config" in [point.name for point in area_entry_points()]
        True
    """
    unique = {point.name: point for point in entry_points(group=AREA_GROUP)}
    return [unique[name] for name in sorted(unique)]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="kakehashi",
        description="kakehashi: configs, jobs, HPO, zero-wait HPO simulation, model bridge, data and training.",
        epilog="example:\n  kakehashi config show core/config/examples/demo.yaml model.alpha=0.5",
    )
    parser.add_argument("--version", action="version", version=f"kakehashi {__version__}")
    areas = parser.add_subparsers(title="areas", metavar="AREA")
    for point in area_entry_points():
        try:
            register = point.load()
        except ImportError as exc:
            _register_unavailable(areas, point, exc)
            continue
        register(areas)
    return parser


def _register_unavailable(areas: SubParsers, point: EntryPoint, exc: ImportError) -> None:
    area = point.name
    missing = exc.name or str(exc)

    def unavailable(_: argparse.Namespace) -> int:
        raise DependencyError(
            f"the {area} commands need {missing!r}, which does not import",
            where=point.value,
            hint="install the matching extra, e.g. pip install 'kakehashi[all]'",
        )

    parser = areas.add_parser(
        area,
        help=f"(unavailable: {missing} is missing)",
        description=f"The {area} commands are unavailable here: {missing} does not import.",
        epilog="example:\n  pip install 'kakehashi[all]'",
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=unavailable)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        if getattr(args, "overrides_anywhere", False) and not any(item.startswith("-") for item in extras):
            args.overrides = [*args.overrides, *extras]  # overrides after an option flag
        else:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except UserError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except Exception as exc:
        converted = user_error_from(exc)
        if converted is None:
            raise  # a bug: keep its traceback
        return _report(converted)


def _report(exc: UserError) -> int:
    print(f"error: {exc.line()}", file=sys.stderr)
    return exc.exit_code


_OS_USER_ERRORS = {
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "give a file, not a folder",
    errno.EACCES: "check the permissions",
    errno.EPERM: "check the permissions",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.ENOSPC: "the disk is full: free space or choose another folder",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose another folder",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EEXIST: "remove it or choose another path",
}


def user_error_from(exc: BaseException) -> UserError | None:
    """The one-line error for a mistake that surfaced as a library exception, or None for a bug.

    Two classes are the user's wherever they surface: OmegaConf's (a value of the wrong type for a typed node,
    a missing key, an interpolation that does not resolve) and the file system's about a path (missing, a folder,
    no permission, a full or read-only disk).

    Example:
        >>> user_error_from(IsADirectoryError(21, "Is a directory", "runs")).line()
        'Is a directory (runs) — give a file, not a folder'
        >>> user_error_from(ValueError("a bug")) is None
        True
    """
    module = type(exc).__module__ or ""
    if module.startswith("omegaconf"):
        from omegaconf.errors import OmegaConfBaseException

        from core.config.loader import config_error_from

        if isinstance(exc, OmegaConfBaseException):
            return config_error_from(exc, "config")
    if isinstance(exc, OSError) and exc.errno in _OS_USER_ERRORS:
        where = " → ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None) or None
        return UserError(exc.strerror or str(exc), where=where, hint=_OS_USER_ERRORS[exc.errno])
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
