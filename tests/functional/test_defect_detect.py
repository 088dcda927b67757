"""defect_detect through the functions-framework test client, against Postgres and LocalStack:
batches with bad files among good ones, records and their owner, odd and oversized pictures, and
the inbox trigger run once."""

import base64
import datetime as dt
import io
import uuid

import pytest
from PIL import Image
from sqlalchemy import select

from shared.defects.model import LABELS
from shared.defects.records import DefectRecord, DefectRecords
from shared.platform.db.engine import session_scope
from shared.platform.idempotency import ProcessedObjects
from shared.platform.storage import get_object_store
from tests.conftest import SHARED_DATA, act_as, environment, event_file
from tests.functional.defect_owners import _as, _owner
from tests.functional.test_face_functions import _png_header_only
from tests.functional.test_functions import _batch_for, _delivered, _upload

NEU_IMAGES = SHARED_DATA / "defects" / "neu_det" / "images"


def neu_image(label: str, index: int = 0) -> tuple[str, bytes]:
    """A real NEU-DET picture of ``label`` (its file name and bytes)."""
    path = sorted(NEU_IMAGES.glob(f"{label}_*.jpg"))[index]
    return path.name, path.read_bytes()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _rows(database_url: str, owner: str) -> list[DefectRecord]:
    with session_scope(database_url) as session:
        return list(session.scalars(select(DefectRecord).where(DefectRecord.owner == owner).order_by(DefectRecord.id)))


@pytest.fixture(scope="module")
def detect(function_client):
    return function_client("defect_detect")


def _post_images(client, files: list[tuple[str, bytes]], owner: str, field: str = "images"):
    return client.post(
        "/api/detect",
        data={field: [(io.BytesIO(content), name) for name, content in files]},
        content_type="multipart/form-data",
        headers=_as(owner),
    )


# --- POST /api/detect -----------------------------------------------------------------------------


def test_a_batch_answers_each_image_in_order_and_records_the_good_ones(detect, database_url):
    owner = _owner()
    batch = [
        neu_image("scratches"),
        ("broken.jpg", event_file("truncated.jpg")),
        neu_image("patches"),
        ("notes.txt", b"not an image"),
        neu_image("inclusion"),
    ]
    response = _post_images(detect, batch, owner)
    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.get_json()
    assert [entry["name"] for entry in results] == [name for name, _ in batch]
    good = [results[0], results[2], results[4]]
    for entry in good:  # (how right the model is, is the model's tests' business)
        assert set(entry) >= {"defect_count", "dice", "labels", "name", "processing_time", "result_image", "defects"}
        assert entry["labels"] in LABELS and 0 < entry["dice"] <= 1 and 0 < entry["processing_time"] < 60
        assert entry["defect_count"] == len(entry["defects"])
        for defect in entry["defects"]:
            x, y, w, h = defect["box"]
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 200 and y + h <= 200
        picture = Image.open(io.BytesIO(base64.b64decode(entry["result_image"])))
        assert picture.format == "PNG" and picture.size == (200, 200)
    assert results[1] == {
        "name": "broken.jpg",
        "error": "Invalid image data for broken.jpg",
        "status": 400,
        "details": results[1]["details"],
    }
    assert "truncated or corrupt" in results[1]["details"]
    assert results[3]["status"] == 400 and "not a supported image" in results[3]["details"]
    rows = _rows(database_url, owner)
    assert [(row.id, row.name, row.label, row.num) for row in rows] == [
        (entry["figId"], entry["name"], entry["labels"], entry["defect_count"]) for entry in good
    ]
    for row, entry in zip(rows, good, strict=True):
        assert row.result_key == entry["resFig"] and row.result_key.startswith("outputs/defects/api/")
        assert get_object_store().get(row.result_key).data == base64.b64decode(entry["result_image"])
        assert row.defects == entry["defects"] and row.created_day == dt.datetime.now(dt.UTC).date()


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (1, 1)),
        Image.new("RGB", (1, 3000), (90, 90, 90)),
        Image.new("RGBA", (64, 48), (1, 2, 3, 4)),
        Image.new("I;16", (40, 40), 60000),
        Image.new("CMYK", (50, 50)),
    ],
)
def test_odd_but_valid_images_are_inspected(detect, image):
    response = _post_images(detect, [("odd.png", _png(image) if image.mode != "CMYK" else _jpeg(image))], _owner())
    assert response.status_code == 200, response.get_data(as_text=True)
    [entry] = response.get_json()
    assert (entry["width"], entry["height"]) == image.size and "error" not in entry


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def test_a_full_hd_picture_gets_boxes_in_its_own_pixels(detect):
    _name, data = neu_image("crazing")
    large = Image.open(io.BytesIO(data)).convert("L").resize((1920, 1080))
    [entry] = _post_images(detect, [("large.png", _png(large))], _owner()).get_json()
    assert (entry["width"], entry["height"]) == (1920, 1080)
    assert all(d["box"][0] + d["box"][2] <= 1920 and d["box"][1] + d["box"][3] <= 1080 for d in entry["defects"])


def test_not_one_usable_image_is_the_seeds_400_and_records_nothing(detect, database_url):
    owner = _owner()
    response = _post_images(detect, [("a.jpg", b""), ("b.jpg", b"\xff\xd8 not really")], owner)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "Invalid image data for a.jpg" and body["details"] == "The file is empty"
    assert [entry["name"] for entry in body["results"]] == ["a.jpg", "b.jpg"]
    assert _rows(database_url, owner) == []


@pytest.mark.parametrize(("files", "field"), [([], "images"), ([("a.png", b"x")], "image"), ([("", b"")], "images")])
def test_no_images_is_the_seeds_400(detect, files, field):
    response = _post_images(detect, files, _owner(), field=field)
    assert response.status_code == 400
    assert response.get_json()["error"] == "No images provided"


def test_no_body_or_a_json_body_is_no_images(detect):
    assert detect.post("/api/detect").get_json()["error"] == "No images provided"
    assert detect.post("/api/detect", json={"images": ["a"]}).get_json()["error"] == "No images provided"


def test_the_only_image_too_large_or_in_another_format_keeps_its_status(detect):
    response = _post_images(detect, [("bomb.png", _png_header_only(20000, 20000))], _owner())
    assert response.status_code == 413 and "400000000 pixels" in response.get_json()["details"]
    response = _post_images(detect, [("plate.ppm", b"P6\n2 2\n255\n" + bytes(12))], _owner())
    assert response.status_code == 415 and "PPM images are not supported" in response.get_json()["details"]


def test_too_many_images_is_413_before_any_is_inspected(function_client, database_url):
    owner = _owner()
    with environment(VISIONFN_DEFECT_MAX_BATCH_IMAGES="3"):
        response = _post_images(function_client("defect_detect"), [neu_image("crazing", n) for n in range(4)], owner)
    assert response.status_code == 413
    assert response.get_json() == {"detail": "4 images in one request; the limit is 3 (VISIONFN_DEFECT_MAX_BATCH_IMAGES)"}
    assert _rows(database_url, owner) == []


def test_a_batch_over_the_pixel_budget_is_413_before_any_is_inspected(function_client, database_url):
    owner = _owner()
    detect = function_client("defect_detect", VISIONFN_DEFECT_MAX_BATCH_PIXELS="100000")  # two 200x200 pictures fit, three do not
    with environment(VISIONFN_DEFECT_MAX_BATCH_PIXELS="100000"):
        assert _post_images(detect, [neu_image("crazing", n) for n in range(2)], owner).status_code == 200
        response = _post_images(detect, [neu_image("crazing", n) for n in range(3)], owner)
    assert response.status_code == 413 and "120000 pixels in all; the limit is 100000" in response.get_json()["detail"]
    assert len(_rows(database_url, owner)) == 2


def test_a_batch_over_the_body_limit_is_413(function_client):
    client = function_client("defect_detect", VISIONFN_MAX_UPLOAD_BYTES="20000")
    with environment(VISIONFN_MAX_UPLOAD_BYTES="20000"):
        response = _post_images(client, [neu_image("crazing", n) for n in range(3)], _owner())
    assert response.status_code == 413


def test_detect_needs_a_caller(function_client):
    client = function_client("defect_detect")
    act_as(client, None)
    response = client.post("/api/detect", data={"images": [(io.BytesIO(neu_image("crazing")[1]), "a.jpg")]})
    assert response.status_code == 401
    assert client.get("/api/detect").status_code == 405


# --- the inbox ------------------------------------------------------------------------------------


def test_inbox_object_is_inspected_once_for_the_owner_in_its_key(detect, database_url, sqs_s3_batch, platform):
    owner = _owner()
    key = f"inbox/defects/{owner}/line 4/{uuid.uuid4().hex}.jpg"
    etag = _upload(key, neu_image("pitted_surface")[1])
    batch = _batch_for(sqs_s3_batch, key, etag)
    for _ in range(2):  # a redelivery does nothing
        assert _delivered(detect, batch) == {"batchItemFailures": []}
    records = DefectRecords(database_url).by_source(key)
    assert len(records) == 1  # here or in the platform's own defect_detect: once
    [record] = records
    assert record.label in LABELS and record.resFig == f"outputs/defects/{key.removeprefix('inbox/defects/')}.png"
    assert Image.open(io.BytesIO(get_object_store().get(record.resFig).data)).format == "PNG"
    assert [row.owner for row in _rows(database_url, owner)] == [owner]
    [entry] = ProcessedObjects("defect_inbox", database_url).entries(key)
    assert entry.status == "done" and entry.output_key == record.resFig


def test_inbox_object_without_an_owner_segment_goes_to_the_default_owner(detect, database_url, sqs_s3_batch):
    key = f"inbox/defects/{uuid.uuid4().hex}.jpg"
    etag = _upload(key, neu_image("crazing")[1])
    assert _delivered(detect, _batch_for(sqs_s3_batch, key, etag)) == {"batchItemFailures": []}
    with session_scope(database_url) as session:
        owners = session.scalars(select(DefectRecord.owner).where(DefectRecord.source_key == key)).all()
    assert owners == ["local"]  # VISIONFN_DEFECT_INBOX_OWNER's default, here and in the platform's process


def test_inbox_drops_what_is_not_an_image(detect, database_url, sqs_s3_batch):
    key = f"inbox/defects/{_owner()}/{uuid.uuid4().hex}.jpg"
    etag = _upload(key, b"plain text, not a picture")
    assert _delivered(detect, _batch_for(sqs_s3_batch, key, etag)) == {"batchItemFailures": []}
    [entry] = ProcessedObjects("defect_inbox", database_url).entries(key)
    assert entry.status == "error" and "not a supported image" in entry.error
    assert DefectRecords(database_url).by_source(key) == []
