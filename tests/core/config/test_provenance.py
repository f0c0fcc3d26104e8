from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from core.config import check_git, load_config, save_run_config
from core.config.provenance import repo_states
from core.errors import UserError


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def user_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding a module that a config's _target_ names, importable from sys.path."""
    repo = tmp_path / "userrepo"
    (repo / "khtest_userpkg").mkdir(parents=True)
    (repo / "khtest_userpkg" / "__init__.py").write_text("")
    (repo / "khtest_userpkg" / "model.py").write_text("def build(width: int = 1) -> int:\n    return width\n")
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.syspath_prepend(str(repo))
    for name in [m for m in sys.modules if m.startswith("khtest_userpkg")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    return repo


def _config() -> object:
    return OmegaConf.create(
        {
            "model": {"_target_": "khtest_userpkg.model.build", "width": 3},
            "scaler": {"_target_": "sklearn.preprocessing.StandardScaler"},
        }
    )


def test_clean_repository_passes_the_strict_check(user_repo: Path) -> None:
    states = check_git(_config(), strict=True)  # the anchor's check failed even here
    assert len(states) == 1
    assert states[0].path == str(user_repo)
    assert states[0].commit == _git(user_repo, "rev-parse", "HEAD")
    assert not states[0].dirty
    assert states[0].targets == ["khtest_userpkg.model.build"]


def test_untracked_files_do_not_make_a_tree_dirty(user_repo: Path) -> None:
    (user_repo / "runs").mkdir()
    (user_repo / "runs" / "log.txt").write_text("x")
    assert not check_git(_config(), strict=True)[0].dirty


def test_uncommitted_change_is_refused_when_strict(user_repo: Path) -> None:
    (user_repo / "khtest_userpkg" / "model.py").write_text("def build(width: int = 2) -> int:\n    return 0\n")
    assert check_git(_config(), strict=False)[0].dirty
    with pytest.raises(UserError, match=r"uncommitted changes in 1 file\(s\): khtest_userpkg/model\.py"):
        check_git(_config(), strict=True)


def test_installed_packages_are_not_repositories() -> None:
    cfg = OmegaConf.create({"a": {"_target_": "sklearn.linear_model.Ridge"}, "b": {"_target_": "json.dumps"}})
    assert repo_states(cfg) == []


def test_save_run_config_writes_the_config_as_run(user_repo: Path, tmp_path: Path) -> None:
    source = tmp_path / "exp.yaml"
    source.write_text(
        "_base_: ${pkg:core.config}/examples/base.yaml\nlr: ${eval:1/8}\n"
        "model: {_target_: khtest_userpkg.model.build}\n"
    )
    cfg = load_config(source, ["seed=7"])
    run = save_run_config(cfg, tmp_path / "run" / "1")
    merged = load_config(run / "merged_config.yaml")
    assert merged.lr == 0.125 and merged.seed == 7
    assert "${" not in (run / "merged_config.yaml").read_text()
    provenance = json.loads((run / "provenance.json").read_text())
    assert {"time", "host", "user", "cwd", "command_line", "python", "packages", "repositories"} <= set(provenance)
    assert provenance["packages"]["omegaconf"].startswith("2.3")
    (repo,) = provenance["repositories"]
    assert repo["path"] == str(user_repo) and repo["dirty"] is False
    assert repo["commit"] == _git(user_repo, "rev-parse", "HEAD")
    assert not list(run.glob(".*.tmp"))


def test_save_run_config_into_an_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot write the run directory"):
        save_run_config(OmegaConf.create({"a": 1}), blocker / "run")
