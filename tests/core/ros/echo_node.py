"""A tiny node for the core.ros tests: republishes each audio block on /echo/out with its channels reversed and a
gain taken from the ROS parameter ``gain``; a block whose rate is not ``rate`` is dropped with one log line."""

from __future__ import annotations

import sys

from rclpy.context import Context
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray

from core.ros.messages import audio_to_message, message_to_audio
from core.ros.node import declare, guarded, spin_node


def make_node(context: Context) -> Node:
    node = Node("echo", context=context)
    gain = float(declare(node, "gain", 1.0))
    rate = int(declare(node, "rate", 16000))
    publisher = node.create_publisher(Float32MultiArray, "/echo/out", 10)

    def on_audio(message: Float32MultiArray) -> None:
        samples, got = message_to_audio(message)
        if got != rate:
            raise ValueError(f"expected {rate} Hz audio, got {got} Hz")
        publisher.publish(audio_to_message(samples[::-1] * gain, rate))

    node.create_subscription(Float32MultiArray, "/echo/in", guarded(node, on_audio), 10)
    return node


if __name__ == "__main__":
    sys.exit(spin_node(make_node))
