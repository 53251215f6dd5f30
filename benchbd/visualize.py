"""Pictures of what an attack does to images, in the style of BaDLoss figure 2 (Pillow only)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchbd.attacks import Attack, apply_trigger_uint8
from benchbd.errors import BenchbdError

#: Images are upscaled (nearest neighbour) to at least this many pixels on their longer side.
MIN_TILE = 128
PAD = 6
LINE = 14


def attack_sheet(attack: Attack, images: np.ndarray, path: Path, amplify: float = 10.0, *, test_time: bool = False) -> None:
    """Draw one row per clean uint8 image of ``images`` (N, H, W, 3): the clean image, the triggered image
    (through :func:`apply_trigger_uint8`, so rounded as a published poisoned image would be) and the absolute
    difference multiplied by ``amplify``; save as PNG at ``path``.

    ``attack`` must be ready to use (:meth:`Attack.prepare` called if its trigger needs it); ``test_time``
    draws the test-time trigger (e.g. the boosted blends) instead of the training-time one.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise BenchbdError(f"attack_sheet: images must be uint8 of shape (N, H, W, 3) with N >= 1; got {images.dtype} {images.shape}")
    if amplify <= 0:
        raise BenchbdError(f"attack_sheet: amplify must be > 0; got {amplify}")
    triggered = apply_trigger_uint8(attack, images, test_time=test_time)
    difference = np.clip(np.abs(triggered.astype(np.float32) - images) * amplify, 0, 255).round().astype(np.uint8)
    columns = [
        ("clean", images),
        ("test-time trigger" if test_time else "triggered", triggered),
        (f"|difference| x{amplify:g}", difference),
    ]

    height, width = images.shape[1:3]
    scale = max(1, math.ceil(MIN_TILE / max(height, width)))
    tile_w, tile_h = width * scale, height * scale
    top = PAD + 2 * LINE
    sheet = Image.new("RGB", (PAD + len(columns) * (tile_w + PAD), top + len(images) * (tile_h + PAD)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    draw.text((PAD, PAD), f"{attack.name}   target {attack.target}", fill="black", font=font)
    for column, (label, tiles) in enumerate(columns):
        left = PAD + column * (tile_w + PAD)
        draw.text((left, PAD + LINE), label, fill="black", font=font)
        for row, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile).resize((tile_w, tile_h), Image.NEAREST), (left, top + row * (tile_h + PAD)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
