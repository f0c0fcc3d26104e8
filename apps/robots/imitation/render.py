"""Draw the arena with Pillow: one frame as a PNG, an episode as an animated GIF.

Robots are discs with a heading tick, coloured by their current behaviour when one is given (grey: none);
boxes are brown squares; the storage zone is the green strip on the left.

Example:
    >>> import tempfile, os
    >>> from apps.robots.imitation.env import BoxPushingEnv, EnvConfig
    >>> env = BoxPushingEnv(EnvConfig(n_robots=2, n_boxes=2))
    >>> _ = env.reset(seed=0)
    >>> image = render_frame(env, labels=[0, 2])
    >>> image.size
    (400, 400)
    >>> folder = tempfile.mkdtemp()
    >>> save_gif([image, render_frame(env)], os.path.join(folder, "episode.gif"))
    >>> save_png(image, os.path.join(folder, "frame.png"))
    >>> sorted(os.listdir(folder))
    ['episode.gif', 'frame.png']
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.files import write_atomic

# explore, collect, store
BEHAVIOUR_COLOURS = ((70, 130, 220), (240, 170, 40), (210, 50, 50))
NO_LABEL_COLOUR = (120, 120, 120)


def render_frame(env: Any, labels: Sequence[int] | None = None, pixels_per_metre: float = 100.0) -> Any:
    """The current state of ``env`` (a :class:`~apps.robots.imitation.env.BoxPushingEnv`) as a PIL image."""
    import pymunk
    from PIL import Image, ImageDraw

    c = env.config
    scale = pixels_per_metre
    size = (round(c.width * scale), round(c.height * scale))
    image = Image.new("RGB", size, (245, 245, 240))
    draw = ImageDraw.Draw(image)

    def to_pixels(x: float, y: float) -> tuple[float, float]:
        return x * scale, (c.height - y) * scale  # y up in the world, down in the image

    draw.rectangle([0, 0, c.zone_width * scale, size[1]], fill=(200, 235, 200))
    for body, shape, stored in zip(env.boxes, env.box_shapes, env.stored, strict=True):
        if stored:
            continue
        corners = [to_pixels(*body.local_to_world(v)) for v in shape.get_vertices()]
        draw.polygon(corners, fill=(170, 120, 60), outline=(90, 60, 30))
    r = c.robot_radius * scale
    for i, body in enumerate(env.robots):
        x, y = to_pixels(body.position.x, body.position.y)
        label = None if labels is None else labels[i]
        colour = (
            BEHAVIOUR_COLOURS[label] if label is not None and 0 <= label < len(BEHAVIOUR_COLOURS) else NO_LABEL_COLOUR
        )
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(20, 20, 20))
        for shape in body.shapes:
            if isinstance(shape, pymunk.Segment):
                a, b = body.local_to_world(shape.a), body.local_to_world(shape.b)
                draw.line(
                    [to_pixels(a.x, a.y), to_pixels(b.x, b.y)], fill=(20, 20, 20), width=max(2, round(0.03 * scale))
                )
        hx, hy = x + r * math.cos(body.angle), y - r * math.sin(body.angle)
        draw.line([x, y, hx, hy], fill=(20, 20, 20), width=2)
        draw.text((x - 3, y - 6), str(i), fill=(255, 255, 255))
    draw.rectangle([0, 0, size[0] - 1, size[1] - 1], outline=(40, 40, 40), width=2)
    draw.text(
        (c.zone_width * scale + 6, 4),
        f"step {env.steps}  stored {env.boxes_stored}/{len(env.stored)}",
        fill=(20, 20, 20),
    )
    return image


def save_png(image: Any, path: str | Path) -> None:
    """Write one frame as a PNG (atomically)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())


def save_gif(frames: Sequence[Any], path: str | Path, fps: float = 10.0) -> None:
    """Write frames as a looping animated GIF (atomically)."""
    if not frames:
        raise ValueError("no frames to write")
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=list(frames[1:]), duration=round(1000 / fps), loop=0
    )
    write_atomic(path, buffer.getvalue())


__all__ = ["BEHAVIOUR_COLOURS", "render_frame", "save_gif", "save_png"]
