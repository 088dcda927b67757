"""Decoding (shared/vision/images.py): deep and float images become 8-bit pictures, not white."""

import io

import numpy as np
import pytest
from PIL import Image

from shared.vision.images import decode_image, scale_to_8_bit


def _tiff(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "TIFF")  # TIFF stores every mode as it is, F and I included
    return buffer.getvalue()


# a deep image's values -> the 8-bit levels it becomes
SCALING = {
    "F normalised to 0..1": ("F", [0.0, 0.5, 1.0], [0, 128, 255]),
    "F holding 8-bit levels": ("F", [0.0, 124.2, 255.0], [0, 124, 255]),
    "F out of range: stretched": ("F", [-1.0, 0.0, 3.0], [0, 64, 255]),
    "F with NaN and infinity": ("F", [np.nan, 10.0, 200.0, np.inf], [10, 10, 200, 200]),
    "I;16 full depth": ("I;16", [0, 40000, 65535], [0, 156, 255]),
    "I;16 holding 8-bit levels": ("I;16", [0, 124, 255], [0, 124, 255]),
    "I holding 8-bit levels": ("I", [0, 124, 255], [0, 124, 255]),
    "I negative: stretched": ("I", [-100, 0, 155], [0, 100, 255]),
    "I constant outside 0..65535": ("I", [70000, 70000, 70000], [0, 0, 0]),
}
ARRAY_TYPES = {"F": np.float32, "I;16": np.uint16, "I": np.int32}


@pytest.mark.parametrize(("mode", "values", "levels"), SCALING.values(), ids=SCALING.keys())
def test_deep_values_are_scaled_from_the_range_they_fill(mode, values, levels):
    deep = Image.fromarray(np.array([values], ARRAY_TYPES[mode]))
    assert deep.mode == mode
    scaled = scale_to_8_bit(deep)
    assert scaled.mode == "L"
    assert np.asarray(scaled)[0].tolist() == levels


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "RGBA", "CMYK", "1"])
def test_8_bit_modes_are_left_alone(mode):
    image = Image.new("RGB", (4, 3), (200, 100, 50)).convert(mode)
    assert scale_to_8_bit(image) is image


@pytest.mark.parametrize(
    ("mode", "rgb"),
    [
        ("F", (124, 124, 124)),  # an 8-bit picture converted to F: once came out all white
        ("I", (124, 124, 124)),
        ("I;16", (124, 124, 124)),
        ("L", (124, 124, 124)),
        ("CMYK", (200, 100, 50)),
        ("RGBA", (200, 100, 50)),
    ],
)
def test_decoded_pictures_keep_their_colour(mode, rgb):
    source = Image.new("RGB", (8, 6), (200, 100, 50)).convert(mode)
    decoded = decode_image(_tiff(source), max_pixels=1000).pixels
    assert tuple(np.asarray(decoded.convert("RGB"))[0, 0]) == rgb


@pytest.mark.parametrize(
    ("mode", "gradient"),
    [
        ("F", np.linspace(0.0, 255.0, 64, dtype=np.float32)),
        ("F", np.linspace(0.0, 1.0, 64, dtype=np.float32)),
        ("I;16", np.linspace(0, 65535, 64).astype(np.uint16)),
    ],
    ids=["F 0..255", "F 0..1", "I;16"],
)
def test_a_deep_gradient_decodes_to_the_same_8_bit_gradient(mode, gradient):
    source = Image.fromarray(np.tile(gradient, (16, 1)))
    assert source.mode == mode
    decoded = np.asarray(decode_image(_tiff(source), max_pixels=10_000).pixels)
    assert decoded.dtype == np.uint8
    assert (decoded == decoded[0]).all()  # every row the same
    row = decoded[0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) > 0).all()  # dark to white, rising
    assert np.abs(row - np.linspace(0, 255, 64)).max() <= 1  # evenly, not clipped
