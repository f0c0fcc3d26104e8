"""Message conventions for audio, images and float maps over plain ``std_msgs`` types.

ROS 2's ``audio_common_msgs`` has no wheel here, so multichannel audio travels as a
``std_msgs/Float32MultiArray`` that mirrors audio_common's AudioData + AudioInfo in one message:

- ``layout.dim[0]``: label ``channels``, size C, stride C·N
- ``layout.dim[1]``: label ``samples@<rate>`` (the sample rate in Hz, e.g. ``samples@16000``), size N, stride N
- ``data``: C·N float32 samples, channel-major (all of channel 0, then channel 1, ...), full scale ±1.

Images are ``std_msgs/UInt8MultiArray`` with dims ``height``, ``width``, ``channels`` (row-major, RGB), and float
maps (a localization map, a DOA vector) ``Float32MultiArray`` with one dim per axis, labelled by the sender.
Readers raise ``ValueError`` with one clear sentence on a malformed message; :func:`core.ros.node.guarded`
turns that into one log line while the node keeps running.

Example:
    >>> import numpy as np
    >>> samples = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    >>> message = audio_to_message(samples, 16000)
    >>> [d.label for d in message.layout.dim]
    ['channels', 'samples@16000']
    >>> back, rate = message_to_audio(message)
    >>> rate, bool(np.array_equal(back, samples))
    (16000, True)
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, UInt8MultiArray

_SAMPLES = "samples@"


def _layout(message: Float32MultiArray | UInt8MultiArray, shape: Sequence[int], labels: Sequence[str]) -> None:
    stride = int(np.prod(shape))
    for size, label in zip(shape, labels, strict=True):
        message.layout.dim.append(MultiArrayDimension(label=label, size=int(size), stride=stride))
        stride //= max(int(size), 1)


def _shape(message: Float32MultiArray | UInt8MultiArray, what: str) -> tuple[list[int], list[str]]:
    shape = [int(d.size) for d in message.layout.dim]
    labels = [str(d.label) for d in message.layout.dim]
    if not shape:
        raise ValueError(f"{what} message has no layout dimensions")
    if int(np.prod(shape)) != len(message.data):
        raise ValueError(
            f"{what} message holds {len(message.data)} values but its layout says {'×'.join(map(str, shape))}"
        )
    return shape, labels


def audio_to_message(samples: NDArray[np.floating], rate: int) -> Float32MultiArray:
    """A multichannel block ``samples[C, N]`` at ``rate`` Hz as a ``Float32MultiArray`` (see the module doc)."""
    block = np.ascontiguousarray(samples, dtype=np.float32)
    if block.ndim != 2:
        raise ValueError(f"audio must be [channels, samples], got shape {block.shape}")
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    message = Float32MultiArray()
    _layout(message, block.shape, ("channels", f"{_SAMPLES}{int(rate)}"))
    message.data = array.array("f", block.tobytes())
    return message


def message_to_audio(message: Float32MultiArray) -> tuple[NDArray[np.float32], int]:
    """``(samples[C, N] float32, rate)`` from an audio message; ``ValueError`` if it does not follow the convention."""
    shape, labels = _shape(message, "audio")
    if len(shape) != 2 or labels[0] != "channels" or not labels[1].startswith(_SAMPLES):
        raise ValueError(f"audio message layout must be [channels, samples@<rate>], got {labels}")
    try:
        rate = int(labels[1][len(_SAMPLES) :])
    except ValueError:
        raise ValueError(f"audio message has no integer sample rate in {labels[1]!r}") from None
    if rate <= 0:
        raise ValueError(f"audio message has a non-positive sample rate {rate}")
    return np.frombuffer(message.data, dtype=np.float32).reshape(shape).copy(), rate


def image_to_message(image: NDArray[np.uint8]) -> UInt8MultiArray:
    """An RGB (or grey) image ``[H, W, C]`` uint8 as a ``UInt8MultiArray`` with dims height, width, channels."""
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise ValueError(f"image must be uint8 [height, width, channels], got {pixels.dtype} {pixels.shape}")
    message = UInt8MultiArray()
    _layout(message, pixels.shape, ("height", "width", "channels"))
    message.data = pixels.tobytes()
    return message


def message_to_image(message: UInt8MultiArray) -> NDArray[np.uint8]:
    """The ``[H, W, C]`` uint8 image of an image message; ``ValueError`` if it does not follow the convention."""
    shape, labels = _shape(message, "image")
    if labels != ["height", "width", "channels"]:
        raise ValueError(f"image message layout must be [height, width, channels], got {labels}")
    return np.frombuffer(bytes(message.data), dtype=np.uint8).reshape(shape).copy()


def array_to_message(values: NDArray[np.floating], labels: Sequence[str]) -> Float32MultiArray:
    """A float array (a localization map, a DOA list) with one labelled dimension per axis."""
    grid = np.ascontiguousarray(values, dtype=np.float32)
    if len(labels) != grid.ndim:
        raise ValueError(f"{grid.ndim} axes need {grid.ndim} labels, got {list(labels)}")
    message = Float32MultiArray()
    _layout(message, grid.shape, labels)
    message.data = array.array("f", grid.tobytes())
    return message


def message_to_array(message: Float32MultiArray) -> tuple[NDArray[np.float32], list[str]]:
    """``(array, labels)`` of a float-array message; ``ValueError`` if its layout and data disagree."""
    shape, labels = _shape(message, "array")
    return np.frombuffer(message.data, dtype=np.float32).reshape(shape).copy(), labels


__all__ = [
    "array_to_message",
    "audio_to_message",
    "image_to_message",
    "message_to_array",
    "message_to_audio",
    "message_to_image",
]
