"""The front-end ROS 2 node on loopback: a simulated recording in; enhanced audio, DOA and the spoken command out;
wrong channel counts and rates logged while the node keeps running; a missing model is one error line, exit 2."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (the robots extra)")

from std_msgs.msg import Float32MultiArray, String

from apps.robots.frontend.speech import synthesize
from core.ros.harness import Loopback, start_node, stop_node
from core.ros.messages import audio_to_message, message_to_array, message_to_audio

pytestmark = pytest.mark.ros

KAKEHASHI = str(Path(sys.executable).with_name("kakehashi"))


def test_node_on_loopback_enhances_localizes_recognizes_and_survives_bad_input(tiny_run: Path) -> None:
    speech = synthesize("turn left", voice="en-us+f3", speed=150).astype(np.float64)
    signal = np.concatenate([np.zeros(8000), speech, np.zeros(16000)])
    recording = np.tile(signal, (4, 1)).astype(np.float32)  # the same at every mic: MVDR passes it unchanged
    blocks = [recording[:, i : i + 512] for i in range(0, recording.shape[1] - 511, 512)]
    with Loopback() as ros:
        node = start_node([KAKEHASHI, "robots", "frontend-node", "--model", str(tiny_run)], ros.env)
        try:
            enhanced = ros.collect("/audio/enhanced", Float32MultiArray)
            doa = ros.collect("/doa", Float32MultiArray)
            commands = ros.collect("/command", String)
            publisher = ros.publisher("/audio", Float32MultiArray, depth=200)
            assert ros.wait_for_subscribers(publisher, timeout=90), "the node never subscribed"
            publisher.publish(audio_to_message(blocks[0][:2], 16000))  # 2 channels: dropped, logged
            publisher.publish(audio_to_message(blocks[0], 8000))  # wrong rate: dropped, logged
            for block in blocks:  # real time: one 32 ms block every 32 ms
                publisher.publish(audio_to_message(block, 16000))
                time.sleep(0.032)
            assert ros.wait_for(lambda: len(enhanced) >= len(blocks), timeout=90), f"{len(enhanced)} replies"
            assert ros.wait_for(lambda: commands, timeout=30), "no command recognized"
        finally:
            code, output = stop_node(node, grace=60.0)  # a busy shared machine can take a while to shut down
    audio = [message_to_audio(m) for m in enhanced]
    assert all(rate == 16000 and samples.shape == (1, 512) for samples, rate in audio)
    out = np.concatenate([samples[0] for samples, _ in audio])
    delay = 256  # n_fft - hop
    reference = signal[: len(out) - delay]
    assert np.corrcoef(out[delay:], reference)[0, 1] > 0.99
    assert doa and all(0.0 <= message_to_array(m)[0][0] < 360.0 for m in doa)
    assert [m.data for m in commands] == ["turn left"]
    assert "2 channels, but the model's array has 4" in output
    assert "audio at 8000 Hz, but this node runs at 16000 Hz" in output
    assert code == 0, output


def test_node_with_a_missing_model_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [KAKEHASHI, "robots", "frontend-node", "--model", str(tmp_path / "nothing")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no trained front-end here"), result.stderr
