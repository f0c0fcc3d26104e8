"""The ROS 2 node on loopback: publish a recorded scene's frame and audio, get the map and the directions back;
bad input is dropped with one log line and the node keeps serving; a missing run is one `error:` line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (the avsl extra)")

from std_msgs.msg import Float32MultiArray, String, UInt8MultiArray

from apps.avsl.data import AVSLDataset
from apps.avsl.inference import Localizer
from core.ros.harness import Loopback, start_node, stop_node
from core.ros.messages import audio_to_message, image_to_message, message_to_array
from tests.apps.avsl.conftest import subprocess_env

pytestmark = pytest.mark.ros


def test_node_on_loopback(tiny_run: Path, tiny_data: Path) -> None:
    sample = AVSLDataset(tiny_data / "test.h5")[1]
    frame = sample["image"].permute(1, 2, 0).numpy().copy()
    audio = sample["audio"].numpy()
    expected = Localizer.from_run(tiny_run)(frame, audio)
    with Loopback() as ros:
        env = {**ros.env, **{k: v for k, v in subprocess_env().items() if k in ("PYTHONPATH", "OMP_NUM_THREADS")}}
        node = start_node(
            [sys.executable, "-m", "core.cli", "avsl", "node", str(tiny_run), "--ros-args", "-p", "image_topic:=/cam"],
            env,
        )
        try:
            maps = ros.collect("/avsl/map", Float32MultiArray)
            found = ros.collect("/avsl/detections", String)
            images = ros.publisher("/cam", UInt8MultiArray)
            sounds = ros.publisher("/avsl/audio", Float32MultiArray)
            assert ros.wait_for_subscribers(images, timeout=90) and ros.wait_for_subscribers(sounds, timeout=30)
            images.publish(image_to_message(frame))  # before any audio: dropped, with one line
            sounds.publish(audio_to_message(audio, 8000))  # the wrong rate: dropped, with one line
            sounds.publish(audio_to_message(audio, 16000))
            ros.wait_for(lambda: False, timeout=1.0)
            images.publish(image_to_message(frame))
            assert ros.wait_for(lambda: maps and found, timeout=60)
        finally:
            code, output = stop_node(node, grace=120)
    grid, labels = message_to_array(maps[0])
    assert labels == ["height", "width"] and grid.shape == (32, 64)
    np.testing.assert_allclose(grid, expected.map, atol=1e-5)
    payload = json.loads(found[0].data)
    assert payload["frame"] == 1 and len(payload["detections"]) == len(expected.detections)
    for got, want in zip(payload["detections"], expected.detections, strict=True):
        assert got["cls"] == want.cls and got["azimuth"] == pytest.approx(want.azimuth, abs=1e-3)
    assert code == 0, output[-3000:]
    assert "an image before any audio" in output and "8000 Hz" in output


def test_node_without_a_run_is_one_error_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "avsl", "node", str(tmp_path / "nothing")],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), done.stderr[-2000:]
