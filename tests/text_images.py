"""Pictures with known text, drawn here for the text tests: a card number and a shop word on
plates at known places (DejaVu, matplotlib's own copy)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
CARD_NUMBER = "4111 1111 1111 1111"
SHOP_WORD = "Boulangerie"


def plate(text: str, size: int = 28) -> Image.Image:
    """Black text on a white plate, 8 px of plate around the ink."""
    font = ImageFont.truetype(str(FONT), size)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (right - left + 16, bottom - top + 16), (255, 255, 255))
    ImageDraw.Draw(image).text((8 - left, 8 - top), text, font=font, fill=(0, 0, 0))
    return image


def street_scene(width: int = 800, height: int = 500) -> tuple[Image.Image, dict[str, tuple[int, int, int, int]]]:
    """A textured grey picture with the card number and the shop word on plates; each plate's
    ``x, y, w, h``."""
    rng = np.random.default_rng(26)
    noise = rng.normal(120, 12, (height, width, 1)).clip(0, 255).astype(np.uint8).repeat(3, axis=2)
    scene = Image.fromarray(noise)
    boxes = {}
    for text, (x, y) in ((CARD_NUMBER, (60, 80)), (SHOP_WORD, (420, 320))):
        sign = plate(text)
        scene.paste(sign, (x, y))
        boxes[text] = (x, y, sign.width, sign.height)
    return scene, boxes


def encoded(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def changed_fraction(before: Image.Image, after: bytes | Image.Image | np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Fraction of the box's pixels (``x, y, w, h``) that differ by more than 8 in some channel
    between ``before`` and ``after`` (an encoded picture, a picture or RGB pixels)."""
    if isinstance(after, bytes):
        after = Image.open(io.BytesIO(after))
    pixels = np.asarray(after.convert("RGB") if isinstance(after, Image.Image) else after)
    x, y, w, h = box
    old = np.asarray(before.convert("RGB"))[y : y + h, x : x + w].astype(int)
    return float((np.abs(old - pixels[y : y + h, x : x + w].astype(int)).max(axis=2) > 8).mean())
