"""POST /process and /detect through the functions-framework test client: formats, options,
and every kind of bad input (each a 4xx with a reason, never a 500)."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import CROWD_PHOTO, PORTRAIT_PHOTO, environment, event_file, shared_data


@pytest.fixture(scope="module")
def portrait() -> Image.Image:
    return Image.open(io.BytesIO(shared_data(PORTRAIT_PHOTO))).convert("RGB")


def _encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def clients(function_client):
    return {name: function_client(name) for name in ("face_process", "face_detect")}


def _post(client, path, data: bytes, filename="photo.jpg", field="image", headers=None, **form):
    return client.post(path, data={field: (io.BytesIO(data), filename), **form}, headers=headers or {}, content_type="multipart/form-data")


def test_process_returns_a_jpeg_with_the_face_count(clients):
    response = _post(clients["face_process"], "/process", shared_data(CROWD_PHOTO))
    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    count = int(response.headers["X-Faces-Count"])
    assert count >= 5
    output = Image.open(io.BytesIO(response.data))
    assert output.format == "JPEG" and output.size == (1024, 768)


def test_process_json_when_asked(clients):
    response = _post(clients["face_process"], "/process", shared_data(CROWD_PHOTO), headers={"Accept": "application/json"})
    body = response.get_json()
    assert set(body) >= {"faces", "total_count", "processing_time_ms"}
    assert body["total_count"] == len(body["faces"]) >= 5
    face = body["faces"][0]
    assert len(face["bbox"]) == 4 and 0 < face["confidence"] <= 1 and face["blur_radius"] >= 3


def test_detect_changes_nothing_and_matches_process(clients):
    data = shared_data(CROWD_PHOTO)
    detected = _post(clients["face_detect"], "/detect", data).get_json()
    processed = _post(clients["face_process"], "/process", data, headers={"Accept": "application/json"}).get_json()
    assert [f["bbox"] for f in detected["faces"]] == [f["bbox"] for f in processed["faces"]]


def test_png_in_png_out_and_format_option(clients, portrait):
    png = _encode(portrait, "PNG")
    assert _post(clients["face_process"], "/process", png, "p.png").mimetype == "image/png"
    assert _post(clients["face_process"], "/process", png, "p.png", format="webp").mimetype == "image/webp"


@pytest.mark.parametrize("mode", ["blur", "pixelate", "solid"])
def test_modes_change_the_face(clients, portrait, mode):
    response = _post(clients["face_process"], "/process", _encode(portrait, "PNG"), "p.png", mode=mode, shape="rectangle")
    output = np.asarray(Image.open(io.BytesIO(response.data)).convert("RGB"), np.int16)
    face = (slice(177, 435), slice(391, 565))
    assert np.abs(output[face] - np.asarray(portrait, np.int16)[face]).mean() > 10


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"mode": "swirl"}, "mode"),
        ({"min_confidence": "2"}, "min_confidence"),
        ({"format": "gif"}, "format"),
        ({"draw_boxes": "maybe"}, "draw_boxes"),
        ({"detector": "yolo"}, "detector"),
        ({"shape": "star"}, "shape"),
    ],
)
def test_bad_options_are_422_in_pydantic_shape(clients, portrait, form, field):
    response = _post(clients["face_process"], "/process", _encode(portrait, "JPEG"), **form)
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["body", field]


def _cmyk_jpeg(portrait):
    return _encode(portrait.convert("CMYK"), "JPEG")


def _animated_gif(portrait):
    frames = [portrait.resize((320, 240)), portrait.resize((320, 240)).rotate(10)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "filename"),
    [
        (lambda p: _encode(p, "JPEG"), "photo.png"),  # wrong extension: the content decides
        (_cmyk_jpeg, "cmyk.jpg"),
        (lambda p: _encode(Image.fromarray(np.asarray(p.convert("L"), np.uint16) * 257), "PNG"), "deep.png"),
        (lambda p: _encode(p.convert("RGBA"), "PNG"), "alpha.png"),
        (lambda p: _encode(p.convert("L"), "JPEG"), "grey.jpg"),
        (lambda p: _encode(p, "BMP"), "photo.bmp"),
        (lambda p: _encode(p, "TIFF"), "photo.tiff"),
        (lambda p: _encode(p, "WEBP"), "photo.webp"),
        (_animated_gif, "animated.gif"),
    ],
)
def test_unusual_but_valid_images_are_anonymized(clients, portrait, make, filename):
    response = _post(clients["face_process"], "/process", make(portrait), filename)
    assert response.status_code == 200, response.get_data(as_text=True)
    Image.open(io.BytesIO(response.data)).load()


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"just some text", 400, "not a supported image"),
        (event_file("truncated.jpg"), 400, "truncated or corrupt"),
        (_png_header_only(20000, 20000), 413, "400000000 pixels; the limit is 50000000"),
    ],
)
def test_bad_files_get_a_clear_4xx(clients, data, status, message):
    for client, path in ((clients["face_process"], "/process"), (clients["face_detect"], "/detect")):
        response = _post(client, path, data)
        assert response.status_code == status
        assert message in response.get_json()["detail"]


def test_missing_file_field(clients):
    response = _post(clients["face_process"], "/process", b"x", field="file")
    assert response.status_code == 400
    assert response.get_json() == {"detail": "Missing file field 'image' (multipart/form-data); file fields sent: file"}
    assert clients["face_detect"].post("/detect").status_code == 400


def test_body_over_the_upload_limit_is_413(clients):
    with environment(VISIONFN_MAX_UPLOAD_BYTES="100000"):
        response = _post(clients["face_process"], "/process", b"\xff" * 200_000)
    assert response.status_code == 413
    assert "carries at most 100000 bytes" in response.get_json()["detail"]


@pytest.mark.parametrize(("width", "height"), [(1, 1), (2, 2), (1, 16384), (16384, 1), (3, 9000), (16384, 2)])
@pytest.mark.parametrize("path", ["/process", "/detect"])
def test_thin_and_tiny_images_are_answered_not_crashed(clients, path, width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(buffer, format="PNG")
    client = clients["face_process" if path == "/process" else "face_detect"]
    response = _post(client, path, buffer.getvalue(), "thin.png", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["total_count"] == 0


def test_the_thorough_profile_through_the_function(clients):
    data = shared_data(CROWD_PHOTO)
    default = _post(clients["face_detect"], "/detect", data).get_json()
    thorough = _post(clients["face_detect"], "/detect", data, profile="thorough").get_json()
    assert thorough["detector"] == default["detector"] == "fused"
    assert thorough["total_count"] >= default["total_count"] >= 5  # on this photo, every face of the default and more
    unknown = _post(clients["face_detect"], "/detect", data, profile="slow")
    assert unknown.status_code == 422 and unknown.get_json()["detail"][0]["loc"] == ["body", "profile"]
    other_detector = _post(clients["face_detect"], "/detect", data, profile="thorough", detector="mediapipe")
    assert other_detector.status_code == 422 and "fused" in other_detector.get_json()["detail"][0]["msg"]
