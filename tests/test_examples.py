"""Every example a person can copy runs as written: each ``example:`` in a verb's ``--help``, and each ``bash``/
``sh``/``python`` code block of every README.md.

Examples run in a scratch folder that links the repository's top-level folders (``core``, ``apps``, ``tools``,
...), so relative paths resolve as in a checkout and whatever an example writes lands in the scratch folder.
One example is a help example (its lines run in order, in one shell) or one README block.

Marking an example that needs more than this machine gives every test:

- in a ``--help`` epilog: ``example (slurm):`` instead of ``example:`` — one of the markers below;
- in a README: an HTML comment on the line before the fence, ``<!-- example: slurm -->``; ``<!-- example: skip
  REASON -->`` for a block that is not a command to run (an install line, a cluster of a site we do not have).

Markers: ``slurm``, ``sge``, ``postgres``, ``mpi``, ``sumo``, ``ros`` (the service must be there; under CI=true a
skip is a failure), ``pbs`` (a PBS site: always skipped here, Debian has no PBS) and ``slow`` (minutes: a longer
time bound). The fence's language decides how it runs: ``bash``
and ``sh`` with ``bash -e``, ``python`` with the interpreter running the tests; other blocks (yaml, text) are
documentation, not commands.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.cli import build_parser
from core.jobs.processes import terminate_group

REPO = Path(__file__).resolve().parents[1]
MARKERS = ("slurm", "sge", "postgres", "mpi", "sumo", "ros", "slow", "pbs")
QUICK_SECONDS, SLOW_SECONDS = 240, 1200
SERVICE_ENV = {"slurm": "kakehashi-slurm", "sge": "kakehashi-sge", "postgres": "kakehashi-postgres"}


@dataclass
class Example:
    where: str  # "README.md:42" or "kakehashi job local --help"
    language: str  # bash | python
    code: str
    marks: list[str] = field(default_factory=list)
    skip: str = ""


def _help_examples() -> list[Example]:
    found: list[Example] = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        epilog = parser.epilog or ""
        for match in re.finditer(r"^examples?(?: \(([\w, ]+)\))?:\n((?:[ \t]+\S.*\n?)+)", epilog, re.M):
            marks = [m.strip() for m in (match[1] or "").split(",") if m.strip()]
            lines = [line.strip() for line in match[2].splitlines() if line.strip()]
            found.append(
                Example(f"kakehashi {' '.join(words)} --help".replace("  ", " "), "bash", "\n".join(lines), marks)
            )
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, [*words, name])

    walk(build_parser(), [])
    return found


_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
_MARK = re.compile(r"<!--\s*example:\s*(\w+)\s*(.*?)\s*-->\s*$")


def _readmes() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*README.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(REPO / name for name in listed if (REPO / name).is_file())


def _readme_examples() -> list[Example]:
    found: list[Example] = []
    for readme in _readmes():
        text = readme.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            language = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}.get(
                match[1].lower()
            )
            if language is None:
                continue
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marks, skip = [], ""
            if mark := _MARK.search(before):
                if mark[1] == "skip":
                    skip = mark[2] or "marked skip"
                else:
                    marks = [m.strip() for m in f"{mark[1]} {mark[2]}".replace(",", " ").split()]
            where = f"{readme.relative_to(REPO)}:{line}"
            found.append(Example(where, language, match[2], marks, skip))
    return found


def _params(examples: list[Example]) -> list[object]:
    params = []
    for example in examples:
        marks = [getattr(pytest.mark, m) for m in example.marks if m in MARKERS]
        params.append(pytest.param(example, marks=marks, id=example.where))
    return params


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder that looks like the checkout: its top-level folders and files are links."""
    folder = tmp_path_factory.mktemp("examples")
    for entry in REPO.iterdir():
        if entry.name.startswith(".") or entry.name in ("runs", "build", "dist"):
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


def _service_env(marks: list[str]) -> dict[str, str]:
    """The variables a service's env.sh exports (tools/ci/*-up.sh writes it); skip if the service is not up."""
    env: dict[str, str] = {}
    for mark in marks:
        if mark in SERVICE_ENV:
            script = Path(os.environ.get(f"KAKEHASHI_{mark.upper()}_DIR", f"/tmp/{SERVICE_ENV[mark]}")) / "env.sh"
            if not script.is_file():
                pytest.skip(f"needs {mark}: run tools/ci/{mark}-up.sh")
            out = subprocess.run(["bash", "-c", f"source {script} && env -0"], capture_output=True, check=True)
            env.update(dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item))
        elif mark == "pbs":  # no PBS server exists in Debian; tests/core/jobs plays PBS with a fake qsub
            pytest.skip("needs a PBS site")
        elif mark == "mpi" and shutil.which("mpirun") is None:
            pytest.skip("needs mpirun (OpenMPI)")
    return env


def _run(example: Example, workspace: Path) -> None:
    if example.skip:
        pytest.skip(f"{example.where}: {example.skip}")
    unknown = [m for m in example.marks if m not in MARKERS]
    assert not unknown, f"{example.where}: unknown example marker(s) {unknown}; use one of {MARKERS} or skip"
    env = {**os.environ, **_service_env(example.marks)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    env.pop("CI", None)  # an example behaves as a person's run does
    if "mpi" in example.marks and os.getuid() == 0:  # CI runs as root; OpenMPI refuses root unless told (README)
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    argv = ["bash", "-e", "-c", example.code] if example.language == "bash" else [sys.executable, "-c", example.code]
    timeout = SLOW_SECONDS if "slow" in example.marks else QUICK_SECONDS
    # its own session, so that on a timeout the whole tree goes (an example's workers too), not only the shell
    with subprocess.Popen(
        argv, cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            terminate_group(process.pid, grace=5, leader=process)
            pytest.fail(f"{example.where}: still running after {timeout} s:\n{example.code}")
    done = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    assert done.returncode == 0, (
        f"{example.where} failed with exit {done.returncode}:\n{example.code}\n--- output ---\n"
        f"{(done.stdout + done.stderr)[-3000:]}"
    )
    assert "Traceback (most recent call last)" not in done.stderr, f"{example.where}: a traceback:\n{done.stderr}"


@pytest.mark.parametrize("example", _params(_help_examples()))
def test_help_example_runs_as_written(example: Example, workspace: Path) -> None:
    _run(example, workspace)


@pytest.mark.parametrize("example", _params(_readme_examples()))
def test_readme_example_runs_as_written(example: Example, workspace: Path) -> None:
    _run(example, workspace)


def test_every_verb_has_an_example() -> None:
    verbs_without = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        is_verb = not subparsers and words and "unavailable" not in (parser.description or "")
        if is_verb and not re.search(r"^examples?( \([\w, ]+\))?:", parser.epilog or "", re.M):
            verbs_without.append(" ".join(words))
        for action in subparsers:
            for name, child in action.choices.items():
                walk(child, [*words, name])

    walk(build_parser(), [])
    assert not verbs_without, f"verbs without an example: epilog: {verbs_without}"
