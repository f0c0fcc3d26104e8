"""Fixtures of the job-layer tests: a private job index, and the local Slurm / SGE clusters.

The clusters are the ones ``tools/ci/slurm-up.sh`` and ``tools/ci/sge-up.sh`` start; each writes an env file
(``$KAKEHASHI_SLURM_DIR/env.sh``, default ``/tmp/kakehashi-slurm/env.sh``; ``$KAKEHASHI_SGE_DIR/env.sh``, default
``/tmp/kakehashi-sge/env.sh``) whose exports are loaded into ``os.environ`` here. Without a running cluster the
tests skip with the reason (a failure under ``CI=true``, see tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _private_job_index(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAKEHASHI_JOBS_HOME", str(tmp_path_factory.mktemp("jobs-home")))


def read_env_file(path: Path) -> dict[str, str]:
    """The variables a shell env file exports, read by running it in ``bash`` (so quoting is bash's)."""
    script = 'set -a; . "$1" >/dev/null 2>&1; env -0'

    def exported(file: str) -> dict[str, str]:
        out = subprocess.run(["bash", "-c", script, "bash", file], capture_output=True, check=True, env={}).stdout
        return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)

    bare = exported("/dev/null")  # what bash sets by itself (PWD, SHLVL, a default PATH)
    return {k: v for k, v in exported(str(path)).items() if bare.get(k) != v and k != "_"}


def _cluster_env(variable: str, default: str, up_script: str) -> dict[str, str]:
    env_file = Path(os.environ.get(variable, default)) / "env.sh"
    if not env_file.is_file():
        pytest.skip(f"no {env_file}: start the cluster with {up_script}")
    return read_env_file(env_file)


def _apply(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        if key == "PATH":
            value = f"{value}:{os.environ.get('PATH', '')}"
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """The local Slurm cluster's environment; skips if it is not up."""
    env = _cluster_env("KAKEHASHI_SLURM_DIR", "/tmp/kakehashi-slurm", "tools/ci/slurm-up.sh")
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch is not installed: run tools/ci/slurm-up.sh")
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env={**os.environ, **env})
    if probe.returncode != 0 or not probe.stdout.strip():
        pytest.skip(f"Slurm does not answer ({probe.stderr.strip()[:200]}): run tools/ci/slurm-up.sh")
    return env


@pytest.fixture
def slurm(slurm_cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    _apply(monkeypatch, slurm_cluster)
    return slurm_cluster


@pytest.fixture(scope="session")
def sge_cluster() -> dict[str, str]:
    """The local SGE cluster's environment; skips if it is not up."""
    env = _cluster_env("KAKEHASHI_SGE_DIR", "/tmp/kakehashi-sge", "tools/ci/sge-up.sh")
    merged = {**os.environ, **env, "PATH": f"{env.get('PATH', '')}:{os.environ.get('PATH', '')}"}
    probe = subprocess.run(["qstat", "-f"], capture_output=True, text=True, env=merged)
    if probe.returncode != 0:
        pytest.skip(f"SGE does not answer ({probe.stderr.strip()[:200]}): run tools/ci/sge-up.sh")
    return env


@pytest.fixture
def sge(sge_cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    _apply(monkeypatch, sge_cluster)
    return sge_cluster


@pytest.fixture
def mpi(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenMPI's mpirun, allowed to run as root (CI containers) on more ranks than cores."""
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun is not installed (Debian: apt-get install openmpi-bin libopenmpi-dev)")
    monkeypatch.setenv("OMPI_ALLOW_RUN_AS_ROOT", "1")
    monkeypatch.setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    monkeypatch.setenv("OMPI_MCA_rmaps_base_oversubscribe", "1")
