"""The front-end as a ROS 2 node: multichannel audio in; enhanced audio, DOA and recognized commands out.

Topics (names are ROS parameters):

- ``input_topic`` (default ``audio``): ``std_msgs/Float32MultiArray`` in core.ros's audio convention (dims
  ``channels`` × ``samples@<rate>``), any block length; C must equal the model's microphones, the rate ``rate``.
- ``enhanced_topic`` (``audio/enhanced``): one 1-channel audio message per input message, the enhanced samples
  completed by it (the stream lags the input by ``n_fft - hop`` samples).
- ``doa_topic`` (``doa``): ``Float32MultiArray`` with one dim ``azimuth_deg``: the speaker's azimuth in the
  array's frame (counter-clockwise from microphone 0), once the first DOA is known, one per input message.
- ``command_topic`` (``command``): ``std_msgs/String``, a recognized command at the end of each utterance
  (``recognize: false`` turns the recognizer off).

Other parameters: ``model`` (the run directory of ``train-frontend``), ``rate`` (16000), ``forget`` (0.97),
``vad_mode`` (1).
A message with the wrong channel count or rate is logged as one error line and dropped; the node keeps running.

Run it with ``kakehashi robots frontend-node --model RUN_DIR`` (ROS arguments after ``--ros-args``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from rclpy.context import Context
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray, String

from apps.robots.frontend.asr import StreamingRecognizer
from apps.robots.frontend.enhance import Frontend, StreamingFrontend
from core.ros.messages import array_to_message, audio_to_message, message_to_audio
from core.ros.node import declare, guarded

log = logging.getLogger(__name__)


class FrontendNode(Node):
    """See the module docstring. ``frontend`` is the loaded model (the CLI loads it before ROS starts, so a
    missing model is an ``error:`` line, not a node that never answers)."""

    def __init__(self, frontend: Frontend, context: Context | None = None, cli_args: list[str] | None = None) -> None:
        super().__init__("frontend", context=context, cli_args=cli_args)
        self.rate = int(declare(self, "rate", frontend.fs))
        declare(self, "model", "")
        forget = float(declare(self, "forget", 0.97))
        recognize = bool(declare(self, "recognize", True))
        vad_mode = int(declare(self, "vad_mode", 1))
        self.stream = StreamingFrontend(frontend, forget=forget)
        self.recognizer = StreamingRecognizer(vad_mode=vad_mode) if recognize else None
        self.enhanced = self.create_publisher(Float32MultiArray, declare(self, "enhanced_topic", "audio/enhanced"), 500)
        self.doa = self.create_publisher(Float32MultiArray, declare(self, "doa_topic", "doa"), 50)
        self.command = self.create_publisher(String, declare(self, "command_topic", "command"), 10)
        topic = declare(self, "input_topic", "audio")
        self.create_subscription(Float32MultiArray, topic, guarded(self, self._on_audio), 500)
        self.get_logger().info(
            f"listening on {topic!r}: {self.stream.channels} channels at {self.rate} Hz; "
            f"output lags by {1000 * self.stream.delay / self.rate:.0f} ms plus the block"
        )

    def _on_audio(self, message: Any) -> None:
        samples, rate = message_to_audio(message)
        if rate != self.rate:
            raise ValueError(f"audio at {rate} Hz, but this node runs at {self.rate} Hz (parameter rate)")
        if samples.shape[0] != self.stream.channels:
            raise ValueError(
                f"audio with {samples.shape[0]} channels, but the model's array has {self.stream.channels}"
            )
        out = self.stream.process(samples)
        self.enhanced.publish(audio_to_message(out.audio[None], self.rate))
        if out.doa is not None:
            self.doa.publish(array_to_message(np.array([out.doa], np.float32), ["azimuth_deg"]))
        if self.recognizer is not None:
            for text in self.recognizer.feed(out.audio):
                self.get_logger().info(f"command: {text}")
                self.command.publish(String(data=text))


def run_node(frontend: Frontend, ros_args: list[str] | None = None, duration: float | None = None) -> int:
    """Spin :class:`FrontendNode` until Ctrl-C or SIGTERM, or for ``duration`` seconds (core.ros's
    :func:`~core.ros.node.spin_node`)."""
    from core.ros.node import spin_node

    args = ["--ros-args", *ros_args] if ros_args else None
    return spin_node(lambda context: FrontendNode(frontend, context=context, cli_args=args), duration=duration)


__all__ = ["FrontendNode", "run_node"]
