"""Rendered job scripts against golden files (every bundled template and site preset), and the quoting rules.

Regenerate the golden files after an intended template change with ``KAKEHASHI_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import package_dir
from core.errors import ConfigError, UserError
from core.jobs import JobSpec, get_backend
from core.jobs.scheduler import ScriptBackend
from core.jobs.template import load_backend_config, render_lines, walltime_seconds

GOLDEN = Path(__file__).parent / "golden"
SITES = package_dir("core.jobs.config") / "sites"
STATE, LOG, WORK = Path("/shared/state/job.1"), Path("/shared/logs/train.log"), Path("/shared/work")

SPECS = {
    "cpu": JobSpec(["python", "eval.py", "--out", "a b.json"], name="eval", walltime="0:30:00"),
    "array": JobSpec(["python", "sweep.py"], name="sweep", n_tasks=10, n_tasks_per_proc=3, env={"SEED": "1 2"}),
    "gpu": JobSpec(["python", "train.py", "lr=0.1"], name="train", mode="gpu", n_gpus=2, walltime="1-02:00:00"),
    "mpi": JobSpec(["./solver", "in.dat"], name="solve", mode="mpi", n_procs=8, n_nodes=2),
    "train": JobSpec(["python", "fit.py"], name="ddp", mode="train", n_procs=4, n_nodes=2, n_gpus=4),
}
CONFIGS = {
    "slurm": None,
    "sge": None,
    "pbs": None,
    "slurm-generic": SITES / "slurm-generic.yaml",
    "tsubame-sge": SITES / "tsubame-sge.yaml",
    "abci-pbs": SITES / "abci-pbs.yaml",
}


@functools.cache
def _backend(name: str) -> ScriptBackend:
    kind = name.rsplit("-", 1)[-1] if "-" in name else name
    if name == "slurm-generic":
        kind = "slurm"
    config = load_backend_config(kind, CONFIGS[name])
    config.data["python"] = "/opt/venv/bin/python"
    backend = get_backend(kind, CONFIGS[name])
    assert isinstance(backend, ScriptBackend)
    backend.config = config
    return backend


@pytest.fixture(autouse=True)
def _submitter_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """export_env copies the submitter's PATH into SGE and PBS scripts: make it the same on every machine."""
    monkeypatch.setenv("PATH", "/opt/venv/bin:/usr/bin:/bin")
    monkeypatch.setenv("VIRTUAL_ENV", "/opt/venv")
    monkeypatch.delenv("CONDA_PREFIX", raising=False)


def _render(config: str, mode: str) -> str:
    backend = _backend(config)
    spec = replace(SPECS[mode], cwd=WORK)
    n_array = -(-spec.n_tasks // spec.n_tasks_per_proc)
    return backend.render(spec, n_array, STATE, LOG)


@pytest.mark.parametrize("mode", list(SPECS))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_rendered_script_matches_golden(config: str, mode: str) -> None:
    text = _render(config, mode)
    golden = GOLDEN / f"{config}-{mode}.sh"
    if os.environ.get("KAKEHASHI_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.is_file(), f"no golden file {golden}: run with KAKEHASHI_UPDATE_GOLDEN=1 once"
    assert text == golden.read_text()
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)  # it parses as bash


def test_golden_scripts_say_what_the_spec_says() -> None:
    """Independent of the golden files: the facts a reviewer checks in them."""
    slurm_gpu = _render("slurm", "gpu")
    assert "#SBATCH --time=26:00:00" in slurm_gpu and "#SBATCH --gpus-per-node=2" in slurm_gpu
    assert "#SBATCH --array" not in slurm_gpu
    slurm_array = _render("slurm", "array")
    assert "#SBATCH --array=0-3" in slurm_array and "--time" not in slurm_array  # no walltime: no directive
    assert "export TASK_STEPSIZE=3 TASK_COUNT=10" in slurm_array and "export SEED='1 2'" in slurm_array
    assert "#$ -t 1-4" in _render("sge", "array") and "SGE_TASK_ID - 1" in _render("sge", "array")
    assert "#PBS -J 0-3" in _render("pbs", "array")
    assert "#PBS -l select=2:ncpus=4:mpiprocs=4" in _render("pbs", "mpi")
    assert "mpirun -np 8 ./solver in.dat" in _render("slurm", "mpi")
    assert "srun /opt/venv/bin/python -m core.jobs.launch -- python fit.py" in _render("slurm", "train")
    assert "#PBS -q rt_HG" in _render("abci-pbs", "gpu") and "#PBS -P" not in _render("abci-pbs", "gpu")
    assert "#$ -l node_f=2" in _render("tsubame-sge", "train")


def test_every_argument_is_quoted_so_the_shell_gives_it_back(tmp_path: Path) -> None:
    tricky = ["$(touch pwned)", "a b", "'", '"', "; exit 9", "`id`", "*", "\\", "new\nline", "", "-n", "$HOME"]
    backend = _backend("slurm")
    spec = JobSpec(["printf", "%s\\0", *tricky], cwd=tmp_path, env={"X": "$(touch pwned2) 'q'"})
    log = tmp_path / "out.log"
    script = backend.render(spec, 1, tmp_path, log)
    body = "\n".join(line for line in script.splitlines() if not line.startswith("#"))
    result = subprocess.run(["bash", "-c", body + "\n"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert log.read_bytes().split(b"\0")[:-1] == [t.encode() for t in tricky]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    assert (tmp_path / "0.exit").read_text() == "0\n"
    assert shlex.quote("a b") in script


def test_directive_values_with_line_breaks_are_refused() -> None:
    with pytest.raises(UserError, match="line break"):
        render_lines(["--job-name={name}"], {"name": "x\n#SBATCH --uid=0"}, "t")


def test_unknown_placeholder_names_the_template_line(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("_base_: ${pkg:core.jobs.config}/slurm.yaml\ndirectives: ['--qos={qos}']\n")
    backend = get_backend("slurm", config)
    with pytest.raises(ConfigError, match=r"unknown placeholder \{qos\}.*site.yaml:directives"):
        backend.submit(JobSpec(["true"], cwd=tmp_path, log_path=tmp_path / "x.log"))


def test_walltime_formats() -> None:
    assert walltime_seconds("45") == 45
    assert walltime_seconds("10:00") == 600
    assert walltime_seconds("1:30:00") == 5400
    assert walltime_seconds("2-00:00:01") == 172801
    with pytest.raises(UserError):
        walltime_seconds("1h")
