"""POST /process and /detect with hide (text, numbers) through the functions-framework test
client: the regions hidden and listed, X-Text-Count, the answers without hide unchanged, and
hostile pictures (huge and text-heavy, thousands of tiny regions) answered within the limits."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.text_images import CARD_NUMBER, FONT, SHOP_WORD, changed_fraction, encoded, street_scene


@pytest.fixture(scope="module")
def clients(function_client):
    return {name: function_client(name) for name in ("face_process", "face_detect")}


@pytest.fixture(scope="module")
def scene():
    return street_scene()


def _post(client, path, data: bytes, headers=None, **form):
    return client.post(
        path, data={"image": (io.BytesIO(data), "scene.png"), **form}, headers=headers or {}, content_type="multipart/form-data"
    )


def test_process_hides_text_and_counts_it(clients, scene):
    image, boxes = scene
    response = _post(clients["face_process"], "/process", encoded(image), hide="faces,text")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["X-Text-Count"] == "2"
    assert response.headers["X-Faces-Count"] == "0"
    assert changed_fraction(image, response.data, boxes[CARD_NUMBER]) > 0.3
    assert changed_fraction(image, response.data, boxes[SHOP_WORD]) > 0.3


def test_process_numbers_hides_the_card_and_not_the_shop_sign(clients, scene):
    image, boxes = scene
    response = _post(clients["face_process"], "/process", encoded(image), hide="numbers")
    assert response.headers["X-Text-Count"] == "1"
    assert changed_fraction(image, response.data, boxes[CARD_NUMBER]) > 0.3
    assert changed_fraction(image, response.data, boxes[SHOP_WORD]) == 0.0


def test_process_json_lists_faces_and_text(clients, scene):
    image, _ = scene
    response = _post(clients["face_process"], "/process", encoded(image), headers={"Accept": "application/json"}, hide="text,numbers")
    body = response.get_json()
    assert body["text_count"] == len(body["text"]) == 2
    assert sorted(region["kind"] for region in body["text"]) == ["number", "text"]
    assert all(set(region) == {"bbox", "confidence", "kind"} for region in body["text"])
    assert CARD_NUMBER not in response.get_data(as_text=True) and SHOP_WORD not in response.get_data(as_text=True)


def test_detect_with_numbers_reports_only_the_number(clients, scene):
    image, boxes = scene
    body = _post(clients["face_detect"], "/detect", encoded(image), hide="numbers").get_json()
    assert [region["kind"] for region in body["text"]] == ["number"]
    x, y, w, h = body["text"][0]["bbox"]
    px, py, pw, ph = boxes[CARD_NUMBER]
    assert px <= x and py <= y and x + w <= px + pw and y + h <= py + ph


def test_without_hide_nothing_changes(clients, scene):
    """hide=faces is the default: the same picture, headers and report keys as no hide at all."""
    image, _ = scene
    plain = _post(clients["face_process"], "/process", encoded(image))
    faces = _post(clients["face_process"], "/process", encoded(image), hide="faces")
    assert plain.data == faces.data
    assert "X-Text-Count" not in plain.headers and "X-Text-Count" not in faces.headers
    report = _post(clients["face_detect"], "/detect", encoded(image)).get_json()
    assert set(report) == {"faces", "total_count", "processing_time_ms", "detector", "model", "width", "height"}


@pytest.mark.parametrize("hide", ["", "plates", "faces;text", "faces,,cars"])
def test_unknown_hide_is_422(clients, scene, hide):
    response = _post(clients["face_detect"], "/detect", encoded(scene[0]), hide=hide)
    assert response.status_code == 422
    assert "hide" in response.get_data(as_text=True)


def test_a_huge_text_heavy_picture_is_answered_within_the_limits(clients):
    """GIVEN a 4000 x 3000 page of small digits WHEN hide=numbers THEN a 200 with at most the
    capped number of regions, in bounded time (the detector sees it scaled down)."""
    page = Image.new("RGB", (4000, 3000), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT), 20)
    for row in range(0, 3000, 30):
        draw.text((10, row), "1234 5678 " * 40, font=font, fill=(0, 0, 0))
    response = _post(clients["face_detect"], "/detect", encoded(page, "JPEG"), hide="numbers")
    assert response.status_code == 200
    body = response.get_json()
    assert body["text_count"] <= 1000


def test_thousands_of_tiny_regions_are_bounded(clients):
    """GIVEN 1,600 isolated dots and dashes WHEN hide=text THEN a 200, at most 1000 regions."""
    rng = np.random.default_rng(7)
    pixels = np.full((1200, 1600, 3), 255, np.uint8)
    for y in range(10, 1200, 30):
        for x in range(10, 1600, 40):
            pixels[y : y + 4, x : x + int(rng.integers(4, 14))] = 0
    response = _post(clients["face_process"], "/process", encoded(Image.fromarray(pixels)), hide="text")
    assert response.status_code == 200
    assert int(response.headers["X-Text-Count"]) <= 1000
