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
    """Add the ``CFG`` positional and the ``key=value`` overrides every config-taking verb accepts."""
    parser.add_argument("config", metavar="CFG", help="YAML config file")
    parser.add_argument(
        "overrides", metavar="KEY=VALUE", nargs="*", help="overrides: key.sub=value, +new.key=value, ~key"
    )


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
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except UserError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
