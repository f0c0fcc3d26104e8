"""core.ros: message conventions, and a real node on loopback (publish, collect, malformed input, clean stop)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (the robots extra)")

from std_msgs.msg import Float32MultiArray, MultiArrayDimension

from core.ros.harness import Loopback, start_node, stop_node
from core.ros.messages import (
    array_to_message,
    audio_to_message,
    image_to_message,
    message_to_array,
    message_to_audio,
    message_to_image,
)

pytestmark = pytest.mark.ros


def test_audio_image_and_array_messages_round_trip() -> None:
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((4, 512)).astype(np.float32)
    back, rate = message_to_audio(audio_to_message(audio, 16000))
    assert rate == 16000 and np.array_equal(back, audio)
    image = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    assert np.array_equal(message_to_image(image_to_message(image)), image)
    grid, labels = message_to_array(array_to_message(np.eye(3), ["elevation", "azimuth"]))
    assert labels == ["elevation", "azimuth"] and np.array_equal(grid, np.eye(3, dtype=np.float32))


@pytest.mark.parametrize(
    ("dims", "count", "fragment"),
    [
        ([("channels", 2), ("samples@16000", 4)], 7, "holds 7 values"),
        ([("channels", 2), ("samples", 4)], 8, "samples@<rate>"),
        ([("channels", 2), ("samples@fast", 4)], 8, "no integer sample rate"),
        ([("channels", 8)], 8, "[channels, samples@<rate>]"),
        ([], 0, "no layout"),
    ],
)
def test_malformed_audio_messages_are_one_clear_value_error(
    dims: list[tuple[str, int]], count: int, fragment: str
) -> None:
    message = Float32MultiArray()
    for label, size in dims:
        message.layout.dim.append(MultiArrayDimension(label=label, size=size, stride=size))
    message.data = [0.0] * count
    with pytest.raises(ValueError, match=re.escape(fragment)):
        message_to_audio(message)


def test_a_node_on_loopback_answers_survives_bad_input_and_stops_cleanly() -> None:
    audio = np.stack([np.full(160, 0.1, np.float32), np.full(160, 0.2, np.float32)])
    with Loopback() as ros:
        node = start_node([sys.executable, "-m", "tests.core.ros.echo_node", "--ros-args", "-p", "gain:=2.0"], ros.env)
        try:
            replies = ros.collect("/echo/out", Float32MultiArray)
            publisher = ros.publisher("/echo/in", Float32MultiArray)
            assert ros.wait_for_subscribers(publisher, timeout=60), "the node never subscribed"
            publisher.publish(audio_to_message(audio, 8000))  # wrong rate: dropped with a log line
            publisher.publish(audio_to_message(audio, 16000))
            assert ros.wait_for(lambda: replies, timeout=30), "no reply on /echo/out"
        finally:
            code, output = stop_node(node)
    samples, rate = message_to_audio(replies[0])
    assert len(replies) == 1 and rate == 16000
    np.testing.assert_allclose(samples, audio[::-1] * 2.0)
    assert "expected 16000 Hz audio, got 8000 Hz" in output
    assert code == 0, output
