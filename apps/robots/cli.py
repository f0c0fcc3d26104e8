"""``kakehashi robots VERB``: the robots area, shared by two parts that never import each other.

``apps/robots/frontend`` (the far-field speech front-end and its ROS 2 node) and ``apps/robots/imitation``
(multi-robot imitation learning) each define ``add_verbs(verbs)`` in their own ``cli.py``; this module only puts
them under one area. A part whose dependencies do not import is listed as unavailable, and the other still works.
"""

from __future__ import annotations

import argparse
import importlib

from core.cli import SubParsers, add_area
from core.errors import DependencyError

PARTS = ("apps.robots.frontend.cli", "apps.robots.imitation.cli")


def register(areas: SubParsers) -> None:
    verbs = add_area(
        areas,
        "robots",
        help="robot apps: far-field speech front-end (ROS 2) and multi-robot imitation learning",
        description="Robot applications: a microphone-array speech front-end served as a ROS 2 node, and\n"
        "few-shot multi-robot imitation learning in a 2-D physics simulation.",
    )
    for part in PARTS:
        try:
            module = importlib.import_module(part)
        except ImportError as exc:
            _add_unavailable(verbs, part, exc)
            continue
        module.add_verbs(verbs)


def _add_unavailable(verbs: SubParsers, part: str, exc: ImportError) -> None:
    name = part.split(".")[2]
    missing = exc.name or str(exc)

    def unavailable(_: argparse.Namespace) -> int:
        raise DependencyError(
            f"the robots {name} commands need {missing!r}, which does not import",
            where=part,
            hint="install the robots extra: pip install 'kakehashi[robots]'",
        )

    parser = verbs.add_parser(
        name,
        help=f"(unavailable: {missing} is missing)",
        description=f"The robots {name} commands are unavailable here: {missing} does not import.",
        epilog="example:\n  pip install 'kakehashi[robots]'",
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=unavailable)
