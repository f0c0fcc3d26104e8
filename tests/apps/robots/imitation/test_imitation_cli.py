"""The verbs: bad input is one `error:` line and exit 2; evaluation as a job array agrees with in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from apps.robots.imitation.env import EnvConfig
from apps.robots.imitation.evaluation import evaluate_policy
from core.cli import main
from core.data import HDF5Writer

from .conftest import CONFIG, SMALL


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def test_record_writes_a_demonstration_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.h5"
    assert main(["robots", "record", str(CONFIG), *SMALL, "record.episodes=1", f"record.out={out}"]) == 0
    assert out.is_file() and "1 demonstrations of robot 0" in capsys.readouterr().out


def test_a_file_of_another_format_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.h5"
    HDF5Writer(other).write([{"x": np.zeros(3)}])
    code = main(
        ["robots", "train-imitation", str(CONFIG), f"datamodule.paths=['{other}']", "--run-dir", str(tmp_path / "r")]
    )
    assert code == 2
    assert "not a demonstration file" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()  # refused before a run directory was made


def test_a_policy_for_another_robot_count_is_one_error_line(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["robots", "evaluate", str(CONFIG), "env.n_robots=4", f"evaluate.policy={trained['run']}"])
    assert code == 2
    assert "trained for 3 robots, the environment has 4" in _one_error_line(capsys)


def test_demonstration_seeds_are_not_evaluation_seeds(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["robots", "evaluate", str(CONFIG), *SMALL, f"evaluate.policy={trained['run']}", "evaluate.first_seed=1000"]
    )
    assert code == 2
    assert "were demonstration seeds" in _one_error_line(capsys)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["env.n_robot=4"], "did you mean env.n_robots"),
        (["evaluate.policy=no/such/run"], "policy run directory not found"),
        (["+evaluate.episode=3"], "unknown key(s) ['episode']"),
    ],
)
def test_config_mistakes_are_one_error_line(
    overrides: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["robots", "evaluate", str(CONFIG), *overrides]) == 2
    assert message in _one_error_line(capsys)


def test_evaluation_as_a_job_array_matches_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "expert.json"
    gif = tmp_path / "expert.gif"
    code = main(
        [
            "robots",
            "evaluate",
            str(CONFIG),
            *SMALL,
            "evaluate.policy=expert",
            "evaluate.episodes=2",
            "evaluate.backend=local",
            "evaluate.episodes_per_task=1",
            f"evaluate.out={out}",
            f"evaluate.gif={gif}",
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    here = evaluate_policy("expert", EnvConfig(n_boxes=3, max_steps=60), seeds=[0, 1])
    assert [e["boxes_stored"] for e in report["episodes_detail"]] == [r.boxes_stored for r in here]
    assert len(list((tmp_path / "expert.jobs" / "logs").glob("*"))) >= 2  # two array elements ran
    assert gif.read_bytes()[:6] == b"GIF89a"
