"""Decoding untrusted image bytes with clear errors, and encoding without metadata."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.platform.errors import NotAnImage, PayloadTooLarge, UnsupportedMediaType

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
#: The formats the API documents; the content decides (sniffed by Pillow), not the file name.
SUPPORTED_FORMATS = tuple(CONTENT_TYPES)
#: No side may be longer (OpenCV's own limit is 32767; some of its calls abort past it).
MAX_IMAGE_SIDE = 16_384
#: Single-band modes deeper than 8 bits (16/32-bit integer, 32-bit float): decode_image
#: scales them to 8-bit "L" with scale_to_8_bit.
DEEP_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


@dataclass(frozen=True)
class DecodedImage:
    pixels: Image.Image  # upright (EXIF orientation applied); deep modes scaled to 8-bit "L"
    format: str  # the source's format (JPEG, PNG, ...)


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    content_type: str
    width: int
    height: int


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Open, bound-check and fully load an image, applying its EXIF orientation.

    A 16/32-bit or float image comes back as 8-bit "L" (see scale_to_8_bit), so every
    consumer sees the picture, not values clipped at 255 (white) or at 1.

    Raises NotAnImage (400) for empty, unknown or corrupt data and PayloadTooLarge (413)
    above ``max_pixels`` (checked from the header, before any pixel is decoded).
    """
    if not data:
        raise NotAnImage("The file is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except (UnidentifiedImageError, OSError) as error:
        other = _other_format(data)
        if other:
            raise UnsupportedMediaType(f"{other} images are not supported; send JPEG, PNG, BMP, WebP, TIFF or GIF") from error
        raise NotAnImage(f"The file is not a supported image (JPEG, PNG, BMP, WebP, TIFF or GIF); first bytes: {data[:8].hex()}") from error
    except (ValueError, SyntaxError, EOFError) as error:  # e.g. a text or ICC chunk beyond Pillow's limits
        raise NotAnImage(f"Image metadata is corrupt or too large: {error}") from error
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(f"Image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise PayloadTooLarge(f"Image is {width}x{height}; no side may be longer than {MAX_IMAGE_SIDE} pixels")
    try:
        image.load()
        upright = ImageOps.exif_transpose(image) or image
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise NotAnImage(f"Image data is truncated or corrupt: {error}") from error
    return DecodedImage(pixels=scale_to_8_bit(upright), format=image.format or "PNG")


def sniffed_content_type(data: bytes) -> str:
    """What the bytes are, by their content (never by a name a client chose): an image type we
    support, else ``application/octet-stream``."""
    try:
        with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as image:
            return CONTENT_TYPES[image.format or ""]
    except Exception:  # anything else is served as opaque bytes
        return "application/octet-stream"


def _other_format(data: bytes) -> str | None:
    """The format of an image Pillow knows but the API does not take (PPM, TGA, EPS, ...), read
    from its header only (nothing is decoded, no external program runs)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Exception:  # any failure means: not an image we can name
        return None


def scale_to_8_bit(image: Image.Image) -> Image.Image:
    """A deep single-band image (modes ``I``, ``I;16*``, ``F``) as 8-bit ``L``; any other mode
    is returned as it is.

    The values are mapped from the range they were most likely stored in, so a normal
    picture keeps its brightness and its structure (a gradient stays the same gradient):

    - ``F`` values all within [0, 1]: a normalised picture, multiplied by 255;
    - values all within [0, 255]: already 8-bit levels (an 8-bit picture stored deeper,
      e.g. converted to ``F`` or ``I``), kept as they are;
    - values all within [0, 65535]: 16-bit levels, multiplied by 255 / 65535;
    - anything else (negative values or above 65535, e.g. a depth or HDR map): stretched
      from the image's own minimum..maximum to 0..255 (a constant image becomes 0).

    Levels are rounded to the nearest integer. NaN counts as the lowest finite value,
    infinities as the lowest or highest finite value.
    """
    if image.mode not in DEEP_MODES:
        return image
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
    if image.mode == "F" and low >= 0 and high <= 1:
        levels = values * 255
    elif low >= 0 and high <= 255:
        levels = values
    elif low >= 0 and high <= 65535:
        levels = values * (255 / 65535)
    elif high > low:
        levels = (values - low) * (255 / (high - low))
    else:
        levels = np.zeros_like(values)
    return Image.fromarray(np.round(levels).clip(0, 255).astype(np.uint8))


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
