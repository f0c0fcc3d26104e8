"""One source for figures: every number a README quotes from a benchmark is checked against its results JSON.

The convention (for every Markdown file in the repository):

    | cache hit / in-memory, 0 workers | 0.93× <!-- figure: data.json:cache_hit_over_memory_0_workers --> |

A figure is a number (``1,234``, ``0.93``, ``-2.5e-05``; a ``×`` or ``%`` right after it is allowed) followed,
on the same line and with only spaces and the unit between, by ``<!-- figure: <file>.json:<key> -->``, where
``<file>.json`` lies in ``tools/bench/results/`` and ``<key>`` is a key of it (``a.b`` for a nested one). The
quoted number must equal the JSON value rounded to as many decimals as the quote shows (``6.2`` quotes
``6.2437``; ``5,535`` quotes ``5535.4``). Options after the key: ``scale=100`` compares the JSON value times
100 (a fraction quoted as a percentage), ``sig`` rounds to the quote's significant digits instead of its
decimals (``3.1e-05``). The marker is invisible when the Markdown is rendered. Code blocks (fenced or
indented) are not read.

    python tools/bench/figures.py            # check; exit 1 listing every disagreement
    python tools/bench/figures.py --write    # rewrite the quoted numbers from the JSON (same format)

``tests/tools/test_figures.py`` runs the check over the repository in ``make test``, so a README cannot drift
from its benchmark: rerun the benchmark, then ``--write``, and commit both.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tools" / "bench" / "results"
SKIP_DIRS = {".git", ".venv", "node_modules", "build", "dist", "__pycache__"}

FIGURE = re.compile(
    r"(?P<number>[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"(?P<unit>\s?[×x%]?)\s*"
    r"<!--\s*figure:\s*(?P<file>[\w.-]+\.json):(?P<key>[\w.-]+)(?P<options>(?:\s+[\w=.]+)*)\s*-->"
)
MARKER = re.compile(r"<!--\s*figure:")


@dataclass(frozen=True)
class Figure:
    """One quoted figure: where it is, what it says, and which JSON value it quotes."""

    path: Path
    line: int
    start: int
    end: int
    quoted: str
    file: str
    key: str
    scale: float
    significant: bool


def find_figures(path: Path, text: str) -> tuple[list[Figure], list[str]]:
    """The figures quoted in ``text`` and a problem for every marker that has no number before it.

    Example:
        >>> figures, problems = find_figures(Path("R.md"), "| 6.24× <!-- figure: data.json:speedup --> |")
        >>> [(f.quoted, f.file, f.key) for f in figures], problems
        ([('6.24', 'data.json', 'speedup')], [])
    """
    figures: list[Figure] = []
    problems: list[str] = []
    offset = 0
    fenced = False
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if fenced or line.startswith(("    ", "\t")):  # code blocks show the convention, they quote nothing
            offset += len(line)
            continue
        matched = 0
        for match in FIGURE.finditer(line):
            matched += 1
            options = match.group("options").split()
            scale = 1.0
            for option in options:
                if option.startswith("scale="):
                    scale = float(option.split("=", 1)[1])
            figures.append(
                Figure(
                    path,
                    number,
                    offset + match.start("number"),
                    offset + match.end("number"),
                    match.group("number"),
                    match.group("file"),
                    match.group("key"),
                    scale,
                    "sig" in options,
                )
            )
        if len(MARKER.findall(line)) > matched:
            problems.append(f"{path}:{number}: a figure marker without a number right before it")
        offset += len(line)
    return figures, problems


def _decimals(quoted: str) -> int:
    mantissa = re.split(r"[eE]", quoted)[0]
    return len(mantissa.split(".", 1)[1]) if "." in mantissa else 0


def render(value: float, like: str, significant: bool = False) -> str:
    """``value`` written the way ``like`` is (decimals, thousands separators, exponent).

    Example:
        >>> render(5535.4, "1,000"), render(0.93456, "0.12"), render(3.14159e-5, "1.0e-05", significant=True)
        ('5,535', '0.93', '3.1e-05')
    """
    if re.search(r"[eE]", like):
        digits = _decimals(like)
        return f"{value:.{digits}e}"
    if significant and value != 0:
        digits = max(0, len(re.sub(r"\D", "", like.lstrip("-+0.").replace(",", ""))) - 1)
        text = f"{value:.{digits}e}"
        value = float(text)
    decimals = _decimals(like)
    return f"{value:,.{decimals}f}" if "," in like else f"{value:.{decimals}f}"


def _json(file: str, cache: dict[str, Any]) -> Any:
    if file not in cache:
        path = RESULTS / file
        cache[file] = json.loads(path.read_text()) if path.is_file() else None
    return cache[file]


_MISSING = object()


def lookup(data: Any, key: str) -> Any:
    """``data[key]``, or, for a dotted key such as ``ratio_over_ours.32``, the nested value.

    Example:
        >>> lookup({"a": {"32": 1.5}, "b.c": 2}, "a.32"), lookup({"b.c": 2}, "b.c")
        (1.5, 2)
    """
    if isinstance(data, dict) and key in data:
        return data[key]
    head, dot, rest = key.partition(".")
    while dot:
        if isinstance(data, dict) and head in data:
            found = lookup(data[head], rest)
            if found is not _MISSING:
                return found
        more, dot, rest = rest.partition(".")
        head = f"{head}.{more}"
    return _MISSING


def check_figure(figure: Figure, cache: dict[str, Any]) -> tuple[str | None, str | None]:
    """(problem, the number the JSON says in the quote's format) for one figure."""
    data = _json(figure.file, cache)
    where = f"{figure.path}:{figure.line}"
    if data is None:
        return f"{where}: {figure.file} does not exist in tools/bench/results", None
    value = lookup(data, figure.key)
    if value is _MISSING:
        return f"{where}: {figure.file} has no key {figure.key!r}", None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{where}: {figure.file}:{figure.key} is {value!r}, not a finite number", None
    expected = render(float(value) * figure.scale, figure.quoted, figure.significant)
    if float(expected.replace(",", "")) != float(figure.quoted.replace(",", "")):
        return f"{where}: quotes {figure.quoted}, {figure.file}:{figure.key} says {expected}", expected
    return None, expected


def markdown_files(root: Path = ROOT) -> list[Path]:
    """Every ``*.md`` file under ``root`` outside version-control and build folders."""
    return sorted(p for p in root.rglob("*.md") if not SKIP_DIRS & set(p.relative_to(root).parts))


def check(paths: list[Path], write: bool = False) -> tuple[int, list[str]]:
    """Check (or, with ``write``, rewrite) the figures in ``paths``; returns (figures seen, problems left)."""
    cache: dict[str, Any] = {}
    problems: list[str] = []
    count = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        figures, marker_problems = find_figures(path, text)
        problems += marker_problems
        count += len(figures)
        replacements = []
        for figure in figures:
            problem, expected = check_figure(figure, cache)
            if problem is not None and write and expected is not None:
                replacements.append((figure, expected))
            elif problem is not None:
                problems.append(problem)
        if replacements:
            for figure, expected in sorted(replacements, key=lambda r: -r[0].start):
                text = text[: figure.start] + expected + text[figure.end :]
            sys.path.insert(0, str(ROOT))
            from core.files import write_atomic

            write_atomic(path, text)
    return count, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, help="Markdown files (default: every *.md in the repository)")
    parser.add_argument("--write", action="store_true", help="rewrite quoted figures from the JSON")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.paths] if args.paths else markdown_files()
    count, problems = check(paths, write=args.write)
    for problem in problems:
        print(problem)
    print(f"{count} figures checked in {len(paths)} files, {len(problems)} disagree")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
