"""The thumbnail core and the image decoding it relies on."""

import io

import pytest
from PIL import Image

from shared.platform.errors import NotAnImage, PayloadTooLarge
from shared.thumbnails import make_thumbnail, task_uid_of, thumbnail_key
from tests.conftest import event_file


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("max_side", [16, 100, 256])
def test_thumbnail_fits_the_bound_and_keeps_aspect_and_format(max_side):
    thumbnail = make_thumbnail(event_file("landscape.png"), max_side, 50_000_000)
    image = _open(thumbnail.data)
    assert image.format == "PNG" and thumbnail.content_type == "image/png"
    assert max(image.size) == max_side
    assert image.size == (thumbnail.width, thumbnail.height)
    assert abs(image.width / image.height - 640 / 480) < 0.05


def test_small_image_is_not_enlarged():
    thumbnail = make_thumbnail(event_file("landscape.png"), 4096, 50_000_000)
    assert (thumbnail.width, thumbnail.height) == (640, 480)


def test_exif_orientation_is_applied_and_metadata_dropped():
    source = _open(event_file("rotated_exif.jpg"))
    assert source.size == (320, 240) and source.getexif()[0x0112] == 6
    thumbnail = make_thumbnail(event_file("rotated_exif.jpg"), 256, 50_000_000)
    image = _open(thumbnail.data)
    assert image.format == "JPEG"
    assert image.size == (192, 256)  # portrait: rotated as the camera meant
    assert len(image.getexif()) == 0
    assert "exif" not in image.info and "icc_profile" not in image.info


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (event_file("not_an_image.txt"), "not a supported image"),
        (event_file("truncated.jpg"), "truncated or corrupt"),
    ],
)
def test_bad_bytes_are_rejected_with_a_reason(data, message):
    with pytest.raises(NotAnImage, match=message) as caught:
        make_thumbnail(data, 256, 50_000_000)
    assert caught.value.status == 400


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(PayloadTooLarge, match="640x480 = 307200 pixels; the limit is 1000") as caught:
        make_thumbnail(event_file("landscape.png"), 256, max_pixels=1000)
    assert caught.value.status == 413


def test_keys():
    uid = "0123456789abcdef0123456789abcdef"
    assert thumbnail_key(f"uploads/{uid}/a b.png") == f"thumbnails/{uid}/a b.png"
    assert task_uid_of(f"uploads/{uid}/a b.png") == uid
    assert task_uid_of("uploads/holiday/a.png") is None
    with pytest.raises(ValueError):
        thumbnail_key("inbox/a.png")
