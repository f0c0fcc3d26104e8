"""The ROS 2 localization node (``kakehashi avsl node RUN_DIR``), on core.ros's conventions.

Subscribes to ``image_topic`` (``std_msgs/UInt8MultiArray``, height × width × 3 RGB) and ``audio_topic``
(``std_msgs/Float32MultiArray``, channels × samples with the rate in the label, see :mod:`core.ros.messages`).
The latest audio is kept; each image is localized with the latest audio's last ``window`` seconds and answered
on ``map_topic`` (``Float32MultiArray`` height × width, values in [0, 1]) and ``detections_topic``
(``std_msgs/String``, JSON: ``{"frame": n, "detections": [{"cls", "name", "azimuth", "elevation", "score",
"area"}, ...]}``). An image before any audio, audio at the wrong rate, with the wrong channel count or too short,
or a malformed message is dropped with one log line; the node keeps serving.

ROS parameters (``--ros-args -p name:=value``): ``checkpoint`` (``best``), ``threshold`` (0.5), ``threads`` (1,
torch threads), ``image_topic`` (``/avsl/image``), ``audio_topic`` (``/avsl/audio``), ``map_topic``
(``/avsl/map``), ``detections_topic`` (``/avsl/detections``).

Example::

    kakehashi avsl node runs/avsl --ros-args -p threshold:=0.6 -p image_topic:=/camera/equirect
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError


def make_node(context: Any, run_dir: str | Path, checkpoint: str = "best", cli_args: Sequence[str] = ()) -> Any:
    """Build the node in ``context`` (raises :class:`~core.errors.UserError` for a missing run or checkpoint)."""
    import torch
    from rclpy.node import Node
    from std_msgs.msg import Float32MultiArray, String, UInt8MultiArray

    from apps.avsl.data import read_scene_config
    from apps.avsl.inference import Localizer
    from core.ros.messages import array_to_message, message_to_audio, message_to_image
    from core.ros.node import declare, guarded
    from core.train import load_run_config

    node = Node("avsl_localizer", context=context, cli_args=list(cli_args) or None)
    checkpoint = str(declare(node, "checkpoint", checkpoint))
    threshold = float(declare(node, "threshold", 0.5))
    torch.set_num_threads(int(declare(node, "threads", 1)))
    topics = {
        name: str(declare(node, name, default))
        for name, default in (
            ("image_topic", "/avsl/image"),
            ("audio_topic", "/avsl/audio"),
            ("map_topic", "/avsl/map"),
            ("detections_topic", "/avsl/detections"),
        )
    }
    cfg = load_run_config(run_dir)
    localizer = Localizer.from_run(run_dir, checkpoint, threshold)
    model = localizer.task.model
    rate = int(cfg.task.model.get("sample_rate", 16000))
    n_mics = 4
    train_split = cfg.datamodule.get("train")
    first = train_split if isinstance(train_split, str) else next(iter(train_split))
    try:
        window = round(float(read_scene_config(first)["window"]) * rate)
    except UserError:  # the training data moved: the default window
        window = round(0.32 * rate)
    latest: dict[str, Any] = {"audio": None, "frame": 0}
    maps = node.create_publisher(Float32MultiArray, topics["map_topic"], 10)
    detections = node.create_publisher(String, topics["detections_topic"], 10)

    def on_audio(message: Float32MultiArray) -> None:
        samples, got_rate = message_to_audio(message)
        if got_rate != rate:
            raise ValueError(f"audio at {got_rate} Hz, the model needs {rate} Hz")
        if samples.shape[0] != n_mics:
            raise ValueError(f"audio with {samples.shape[0]} channels, the model needs {n_mics}")
        if samples.shape[1] < window:
            raise ValueError(f"audio block of {samples.shape[1]} samples, the model needs at least {window}")
        latest["audio"] = samples[:, -window:]

    def on_image(message: UInt8MultiArray) -> None:
        image = message_to_image(message)
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[1] != 2 * image.shape[0] or image.shape[0] % 8:
            raise ValueError(f"image of shape {image.shape}: need an H×2H×3 equirectangular frame, H a multiple of 8")
        if latest["audio"] is None:
            raise ValueError("an image before any audio: nothing to localize with yet")
        result = localizer(image, latest["audio"])
        latest["frame"] += 1
        maps.publish(array_to_message(result.map.astype(np.float32), ["height", "width"]))
        payload = {"frame": latest["frame"], "detections": [vars(d) for d in result.detections]}
        detections.publish(String(data=json.dumps(payload)))

    node.create_subscription(Float32MultiArray, topics["audio_topic"], guarded(node, on_audio), 10)
    node.create_subscription(UInt8MultiArray, topics["image_topic"], guarded(node, on_image), 10)
    node.get_logger().info(
        f"localizing {topics['image_topic']} + {topics['audio_topic']} with {run_dir} ({checkpoint}, "
        f"{sum(p.numel() for p in model.parameters())} parameters)"
    )
    return node


def run_node(
    run_dir: str | Path, checkpoint: str = "best", ros_args: Sequence[str] = (), duration: float | None = None
) -> int:
    """Spin the node until Ctrl-C or SIGTERM, or for ``duration`` seconds (core.ros's ``spin_node``); 0 after a
    clean stop."""
    from core.ros.node import spin_node

    if not Path(run_dir, "merged_config.yaml").is_file():
        raise UserError("not a training run: no merged_config.yaml", where=str(run_dir), hint="train one first")
    args = [a for a in ros_args if a != "--"]
    return spin_node(lambda context: make_node(context, run_dir, checkpoint, args), duration=duration)


__all__ = ["make_node", "run_node"]
