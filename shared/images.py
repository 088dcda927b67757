"""Decoding untrusted image bytes with clear errors, and encoding without metadata."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from shared.errors import NotAnImage, PayloadTooLarge

# decode_image checks the pixel count from the header against the configured limit before
# decoding; Pillow's own fixed guard would only answer first with a less useful message.
Image.MAX_IMAGE_PIXELS = None

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


@dataclass(frozen=True)
class DecodedImage:
    pixels: Image.Image  # upright: EXIF orientation applied
    format: str  # the source's format (JPEG, PNG, ...)


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    content_type: str
    width: int
    height: int


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Open, bound-check and fully load an image, applying its EXIF orientation.

    Raises NotAnImage (400) for empty, unknown or corrupt data and PayloadTooLarge (413)
    above ``max_pixels`` (checked from the header, before any pixel is decoded).
    """
    if not data:
        raise NotAnImage("The file is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError) as error:
        raise NotAnImage(
            f"The file is not a supported image (JPEG, PNG, BMP, WebP, TIFF or GIF); "
            f"first bytes: {data[:8].hex()}"
        ) from error
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"Image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels"
        )
    try:
        image.load()
        upright = ImageOps.exif_transpose(image) or image
    except (OSError, ValueError, SyntaxError) as error:
        raise NotAnImage(f"Image data is truncated or corrupt: {error}") from error
    return DecodedImage(pixels=upright, format=image.format or "PNG")


def encode_image(image: Image.Image, image_format: str, quality: int = 85) -> EncodedImage:
    """Encode without any metadata (no EXIF, XMP, ICC or comments)."""
    image_format = image_format.upper() if image_format.upper() in CONTENT_TYPES else "PNG"
    if image_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    elif image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    options = {"quality": quality} if image_format in ("JPEG", "WEBP") else {}
    image.save(buffer, format=image_format, **options)
    return EncodedImage(buffer.getvalue(), CONTENT_TYPES[image_format], image.width, image.height)
