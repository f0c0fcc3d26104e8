"""The kakehashi command: discovery, --help and --version everywhere, one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core import __version__
from core.cli import area_entry_points, build_parser, main
from core.config import package_dir

DEMO = str(package_dir("core.config") / "examples" / "demo.yaml")


def _verbs() -> list[list[str]]:
    """Every area and verb the parser knows, discovered from the parser itself."""
    import argparse

    found: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found.append([*prefix, name])
                    walk(child, [*prefix, name])

    walk(build_parser(), [])
    return found


def test_every_area_is_registered_through_an_entry_point() -> None:
    names = {point.name for point in area_entry_points()}
    assert {"config", "job", "hpo", "bridge", "train", "traffic", "avsl", "audioqa", "robots"} <= names
    assert ["config", "show"] in _verbs()


def test_a_package_outside_core_adds_an_area_and_a_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lab's own distribution (here a dist-info folder on sys.path) plugs in a verb and a job backend."""
    (tmp_path / "mylab_plugin.py").write_text(
        "from core.cli import add_area\n"
        "from core.jobs.local import LocalBackend\n"
        "def register(areas):\n"
        "    verbs = add_area(areas, 'mylab', help='a lab area', description='a lab area')\n"
        "    hello = verbs.add_parser('hello', help='say hello', epilog='example:\\n  kakehashi mylab hello')\n"
        "    hello.set_defaults(handler=lambda args: print('hello from mylab') or 0)\n"
        "class SiteBackend(LocalBackend):\n"
        "    pass\n"
    )
    info = tmp_path / "mylab_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mylab-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[kakehashi.areas]\nmylab = mylab_plugin:register\n\n[kakehashi.backends]\nsite = mylab_plugin:SiteBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["mylab", "hello"]) == 0
    assert "hello from mylab" in capsys.readouterr().out
    from core.jobs.registry import backend_names, get_backend

    assert backend_names()[:4] == ("local", "slurm", "sge", "pbs")
    assert "site" in backend_names()
    site_config = tmp_path / "site.yaml"
    site_config.write_text("_base_: ${pkg:core.jobs.config}/local.yaml\nbackend: site\n")
    assert type(get_backend("site", site_config)).__name__ == "SiteBackend"


@pytest.mark.parametrize("words", [[], *_verbs()], ids=lambda w: " ".join(w) or "root")
def test_help_works_everywhere(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*words, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out
    if len(words) == 2:  # every verb shows an example (tests/test_examples.py runs them; "example (slow):" marks)
        assert re.search(r"^examples?( \([\w, ]+\))?:", out, re.M), out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"kakehashi {__version__}"


def test_show_get_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", DEMO, "data.noise=1.5"]) == 0
    out = capsys.readouterr().out
    assert "noise: 1.5" in out and "_base_" not in out and "${" not in out
    assert main(["config", "get", DEMO, "models.strong_ridge.alpha", "model.alpha=0.5"]) == 0
    assert capsys.readouterr().out.strip() == "50.0"
    assert main(["config", "show", DEMO, "--raw"]) == 0
    assert "${eval:${model.alpha} * 100}" in capsys.readouterr().out


def test_run_records_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["config", "run", DEMO, "data.n_samples=80", "--run-dir", str(run_dir)]) == 0
    result = json.loads((run_dir / "result.json").read_text())
    assert set(result) == {"ridge", "strong_ridge", "scaled_lasso", "shuffled-target baseline"}
    assert result["ridge"]["r2_mean"] > 0.9
    assert result["shuffled-target baseline"]["r2_mean"] < 0.2
    assert "n_samples: 80" in (run_dir / "merged_config.yaml").read_text()
    assert json.loads((run_dir / "provenance.json").read_text())["command_line"]
    assert "ridge" in capsys.readouterr().out


def _error_case(tmp_path: Path, name: str) -> tuple[list[str], str]:
    bad = tmp_path / "bad.yaml"
    cases: dict[str, tuple[str, list[str], str]] = {
        "missing file": ("", ["config", "show", str(tmp_path / "absent.yaml")], "config file not found"),
        "base cycle": (
            "_base_: bad.yaml\n",
            ["config", "show", str(bad)],
            "_base_ cycle: bad.yaml → bad.yaml",
        ),
        "yaml syntax": ("a: [1\n", ["config", "show", str(bad)], "YAML syntax error"),
        "override syntax": ("a: 1\n", ["config", "show", str(bad), "a"], "is not key=value"),
        "unknown key": ("a: 1\n", ["config", "show", str(bad), "b=2"], "no key 'b'"),
        "bad target": ("run: {_target_: nowhere.thing}\n", ["config", "run", str(bad)], "does not import"),
        "eval code": (
            "a: ${eval:'__import__(\"os\").getcwd()'}\n",
            ["config", "show", str(bad)],
            "eval allows only arithmetic",
        ),
        "missing interpolation": (
            "a: ${b.c}\n",
            ["config", "show", str(bad)],
            "Interpolation key 'b.c' not found",
        ),
        "missing get key": ("a: 1\n", ["config", "get", str(bad), "zz"], "no key 'zz'"),
        "unknown verb": ("", ["config", "frobnicate"], "invalid choice"),
    }
    text, argv, message = cases[name]
    if text:
        bad.write_text(text)
    return argv, message


ERROR_CASES = [
    "missing file",
    "base cycle",
    "yaml syntax",
    "override syntax",
    "unknown key",
    "bad target",
    "eval code",
    "missing interpolation",
    "missing get key",
    "unknown verb",
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_user_mistakes_are_one_error_line_and_exit_2(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    argv, message = _error_case(tmp_path, case)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing written


def test_check_git_exit_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "r"
    (repo / "khtest_cli_pkg").mkdir(parents=True)
    (repo / "khtest_cli_pkg" / "__init__.py").write_text("X = 1\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"],
        check=True,
    )
    monkeypatch.syspath_prepend(str(repo))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("x: {_target_: khtest_cli_pkg.X}\n")
    assert main(["config", "check-git", str(cfg), "--strict"]) == 0
    (repo / "khtest_cli_pkg" / "__init__.py").write_text("X = 2\n")
    assert main(["config", "check-git", str(cfg)]) == 1
    assert main(["config", "check-git", str(cfg), "--strict"]) == 2


def test_installed_entry_points() -> None:
    bindir = Path(sys.executable).parent
    for name in ("kakehashi", "kh"):
        exe = shutil.which(name, path=str(bindir)) or shutil.which(name)
        assert exe, f"{name} is not installed"
        done = subprocess.run(
            [exe, "config", "get", DEMO, "seed"],
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
            check=False,
        )
        assert (done.returncode, done.stdout.strip()) == (0, "0"), done.stderr
    done = subprocess.run([exe, "config", "show", "/nonexistent.yaml"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_verbs_progress_lines_print_brackets_as_written() -> None:
    """A config value or a path with ``[word]`` in a log line is text, not rich markup that vanishes."""
    import io

    from rich.console import Console

    from core.cli import log_to

    out = io.StringIO()
    log_to(Console(file=out, width=200))('fit: warning: done before with another config (name: "[bold]a" → "b")')
    assert out.getvalue() == 'fit: warning: done before with another config (name: "[bold]a" → "b")\n'
