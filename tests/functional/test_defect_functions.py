"""defect_detect and defect_data through the functions-framework test client, against Postgres
and LocalStack: batches with bad files among good ones, records and their owner, the inbox
trigger run once, every data query, hostile parameters, the analysis with and without a
language model."""

import base64
import datetime as dt
import io
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from PIL import Image
from sqlalchemy import select

from shared.defects.model import LABELS
from shared.defects.records import DefectRecord, DefectRecords, NewRecord
from shared.platform.db.engine import session_scope
from shared.platform.idempotency import ProcessedObjects
from shared.platform.storage import get_object_store
from tests.conftest import SHARED_DATA, act_as, as_owner, environment, event_file
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


def _owner() -> str:
    return f"owner-{uuid.uuid4().hex[:12]}"


def _as(owner: str) -> dict[str, str]:
    return as_owner(owner)


def _rows(database_url: str, owner: str) -> list[DefectRecord]:
    with session_scope(database_url) as session:
        return list(session.scalars(select(DefectRecord).where(DefectRecord.owner == owner).order_by(DefectRecord.id)))


@pytest.fixture(scope="module")
def detect(function_client):
    return function_client("defect_detect")


@pytest.fixture(scope="module")
def data(function_client):
    return function_client("defect_data")


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


# --- the data service ---------------------------------------------------------------------------


NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
TODAY = NOW.date()


def _record(name: str, num: int, label: str = "crazing", dice: float = 0.95) -> NewRecord:
    return NewRecord(
        name=name, label=label, num=num, dice=dice, result_key=f"outputs/defects/api/{name}.png", defects=[], processing_time_ms=5
    )


@pytest.fixture(scope="module")
def stocked(database_url):
    """An owner with 7 records over 3 days (today, 2 and 4 days ago), and another owner's one."""
    owner = _owner()
    plan = [  # (days ago, name, defects, label, dice)
        (4, "coil_A1.jpg", 2, "crazing", 0.9),
        (4, "coil_A2.jpg", 0, "patches", 0.99),
        (2, "Coil_b1.JPG", 3, "scratches", 0.97),
        (2, "plate 50%_x.png", 1, "crazing", 0.4),
        (0, "coil_c1.jpg", 2, "inclusion", 0.95),
        (0, "coil_c2.jpg", 2, "crazing", 0.92),
        (0, "sheet.bmp", 9, "patches", 0.98),
    ]
    with session_scope(database_url) as session:
        for index, (days_ago, name, num, label, dice) in enumerate(plan):
            moment = NOW - dt.timedelta(days=days_ago, minutes=len(plan) - index)
            DefectRecords.add(session, owner, _record(name, num, label, dice), now=moment)
        DefectRecords.add(session, _owner(), _record("coil_other.jpg", 5), now=NOW)
    return owner


def test_get_recent_newest_first_with_the_seeds_fields(data, stocked):
    response = data.get("/api/data/getRecent?limit=3", headers=_as(stocked))
    assert response.status_code == 200
    recent = response.get_json()
    assert [r["name"] for r in recent] == ["sheet.bmp", "coil_c2.jpg", "coil_c1.jpg"]
    assert set(recent[0]) >= {"figId", "name", "date", "time", "label", "num", "dice"}
    assert recent[0]["date"] == TODAY.isoformat() and len(recent[0]["time"]) == 8 and recent[0]["num"] == 9
    assert len(data.get("/api/data/getRecent", headers=_as(stocked)).get_json()) == 7  # default 120


def test_another_owner_sees_none_of_it(data, stocked):
    stranger = _as(_owner())
    assert data.get("/api/data/getRecent", headers=stranger).get_json() == []
    assert data.get("/api/data/search", headers=stranger).get_json() == {"total": 0, "data": []}
    assert all(day["record_count"] == 0 for day in data.get("/api/data/statByDate", headers=stranger).get_json())
    assert data.get("/api/data/analysis", headers=stranger).get_json()["records"] == 0


def test_stat_by_date_lists_every_day_of_the_default_window(data, stocked):
    days = data.get("/api/data/statByDate", headers=_as(stocked)).get_json()
    assert [day["stat_date"] for day in days] == [(TODAY - dt.timedelta(days=n)).isoformat() for n in range(14, -1, -1)]
    counted = {day["stat_date"]: (day["record_count"], day["total_num"]) for day in days if day["record_count"]}
    assert counted == {
        (TODAY - dt.timedelta(days=4)).isoformat(): (2, 2),
        (TODAY - dt.timedelta(days=2)).isoformat(): (2, 4),
        TODAY.isoformat(): (3, 13),
    }


def test_stat_by_date_window(data, stocked):
    start, end = TODAY - dt.timedelta(days=3), TODAY - dt.timedelta(days=1)
    days = data.get(f"/api/data/statByDate?startDate={start}&endDate={end}", headers=_as(stocked)).get_json()
    assert days == [
        {"record_count": 0, "stat_date": str(start), "total_num": 0},
        {"record_count": 2, "stat_date": str(start + dt.timedelta(days=1)), "total_num": 4},
        {"record_count": 0, "stat_date": str(end), "total_num": 0},
    ]


@pytest.mark.parametrize(
    ("query", "names", "total"),
    [
        ("name=coil", ["coil_c2.jpg", "coil_c1.jpg", "Coil_b1.JPG", "coil_A2.jpg", "coil_A1.jpg"], 5),
        ("name=COIL_A", ["coil_A2.jpg", "coil_A1.jpg"], 2),
        ("name=50%25_", ["plate 50%_x.png"], 1),  # % and _ are literal characters, not wildcards
        ("name=%25", ["plate 50%_x.png"], 1),
        ("num=2", ["coil_c2.jpg", "coil_c1.jpg", "coil_A1.jpg"], 3),
        ("num=0", ["coil_A2.jpg"], 1),
        ("num=2&name=c1", ["coil_c1.jpg"], 1),
        (f"startDate={TODAY - dt.timedelta(days=2)}&endDate={TODAY - dt.timedelta(days=2)}", ["plate 50%_x.png", "Coil_b1.JPG"], 2),
        (f"startDate={TODAY}", ["sheet.bmp", "coil_c2.jpg", "coil_c1.jpg"], 3),
        (f"endDate={TODAY - dt.timedelta(days=3)}", ["coil_A2.jpg", "coil_A1.jpg"], 2),
        ("name=nothing-like-it", [], 0),
        ("limit=2&page=2", ["coil_c1.jpg", "plate 50%_x.png"], 7),
        ("limit=2&page=4", ["coil_A1.jpg"], 7),
        ("limit=2&page=5", [], 7),  # past the end: empty, the total still right
        ("limit=1000&page=1000000", [], 7),
        (
            "name=&num=&startDate=&endDate=&limit=&page=",
            ["sheet.bmp", "coil_c2.jpg", "coil_c1.jpg", "plate 50%_x.png", "Coil_b1.JPG", "coil_A2.jpg", "coil_A1.jpg"],
            7,
        ),
    ],
)
def test_search(data, stocked, query, names, total):
    response = data.get(f"/api/data/search?{query}", headers=_as(stocked))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert ([r["name"] for r in body["data"]], body["total"]) == (names, total)
    assert all(set(r) >= {"figId", "name", "resFig", "date", "time", "label", "num", "dice"} for r in body["data"])


def test_get_paginated_is_deprecated_but_right(data, stocked):
    response = data.get("/api/data/getPaginated?limit=3&page=3", headers=_as(stocked))
    assert response.status_code == 200
    assert response.headers["Deprecation"] == "@1795737600"
    assert response.headers["Link"] == '</api/data/search>; rel="successor-version"'
    assert response.get_json()["total"] == 7 and [r["name"] for r in response.get_json()["data"]] == ["coil_A1.jpg"]
    assert data.get("/api/data/getPaginated?name=sheet", headers=_as(stocked)).get_json()["total"] == 7  # no conditions


@pytest.mark.parametrize(
    ("path", "loc"),
    [
        ("/api/data/getRecent?limit=0", ["query", "limit"]),
        ("/api/data/getRecent?limit=1001", ["query", "limit"]),
        ("/api/data/getRecent?limit=abc", ["query", "limit"]),
        ("/api/data/getRecent?limit=-5", ["query", "limit"]),
        ("/api/data/getRecent?limit=1e3", ["query", "limit"]),
        ("/api/data/getRecent?limit=99999999999999999999999999", ["query", "limit"]),
        ("/api/data/search?page=0", ["query", "page"]),
        ("/api/data/search?page=99999999999", ["query", "page"]),
        ("/api/data/search?num=two", ["query", "num"]),
        ("/api/data/search?num=-1", ["query", "num"]),
        ("/api/data/search?startDate=2026-02-30", ["query", "startDate"]),
        ("/api/data/search?startDate=27.11.2026", ["query", "startDate"]),
        ("/api/data/search?endDate=0000-01-01", ["query", "endDate"]),
        ("/api/data/search?startDate=2026-01-02&endDate=2026-01-01", ["query", "endDate"]),
        ("/api/data/search?name=%00", ["query", "name"]),
        ("/api/data/search?name=" + "x" * 300, ["query", "name"]),
        ("/api/data/statByDate?startDate=2020-01-01&endDate=2026-01-01", ["query", "endDate"]),
        ("/api/data/statByDate?startDate=2026-13-01", ["query", "startDate"]),
        ("/api/data/statByDate?endDate=tomorrow", ["query", "endDate"]),
        ("/api/data/getPaginated?limit=0&page=1", ["query", "limit"]),
        ("/api/data/analysis?limit=100000", ["query", "limit"]),
    ],
)
def test_invalid_parameters_are_422_in_pydantics_shape(data, path, loc):
    response = data.get(path)
    assert response.status_code == 422, response.get_data(as_text=True)
    [problem] = response.get_json()["detail"]
    assert problem["loc"] == loc and {"type", "msg", "input"} <= set(problem)


def test_data_routes_need_a_caller_and_the_right_method(function_client):
    client = function_client("defect_data")
    act_as(client, None)
    assert client.get("/api/data/getRecent").status_code == 401
    assert function_client("defect_data").post("/api/data/search").status_code == 405
    assert function_client("defect_data").get("/api/data/nothing").status_code == 404


def test_analysis_is_computed_here(data, stocked):
    analysis = data.get("/api/data/analysis", headers=_as(stocked)).get_json()
    assert (analysis["records"], analysis["defects"], analysis["defect_rate"]) == (7, 19, round(6 / 7, 4))
    assert [(c["label"], c["records"]) for c in analysis["by_label"]] == [
        ("crazing", 3),
        ("patches", 2),
        ("inclusion", 1),
        ("scratches", 1),
    ]
    assert [d["records"] for d in analysis["daily"]] == [2, 0, 2, 0, 3]
    assert {o["name"]: o["reasons"] for o in analysis["outliers"]} == {
        "sheet.bmp": ["9 defects, above the fence of 4"],
        "plate 50%_x.png": ["class confidence 0.40, below 0.5"],
    }
    assert analysis["narrative"] is None and analysis["narrative_source"] == "computed" and analysis["summary"].startswith("7 records")
    assert data.get("/api/data/analysis?limit=3", headers=_as(stocked)).get_json()["records"] == 3


class FakeLanguageModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat-completions endpoint: answers from ``behaviour``, keeps the requests."""

    behaviour = "answer"
    requests: ClassVar[list[dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeLanguageModel.requests.append({"path": self.path, "authorization": self.headers.get("Authorization"), "body": body})
        if self.behaviour == "slow":
            time.sleep(3)
        if self.behaviour == "fail":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b'{"error": "overloaded"}')
            return
        answer = {"choices": [{"message": {"role": "assistant", "content": "Crazing dominates; check roll 7."}}]}
        if self.behaviour == "nonsense":
            answer = {"unexpected": True}
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def language_model():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLanguageModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


SECRET = "sk-test-" + uuid.uuid4().hex


def _analysis_with(function_client, url: str, owner: str, **variables):
    client = function_client(
        "defect_data", VISIONFN_ANALYSIS_LLM_URL=url, VISIONFN_ANALYSIS_LLM_MODEL="tiny", VISIONFN_ANALYSIS_LLM_KEY=SECRET, **variables
    )
    with environment(VISIONFN_ANALYSIS_LLM_URL=url, VISIONFN_ANALYSIS_LLM_MODEL="tiny", VISIONFN_ANALYSIS_LLM_KEY=SECRET, **variables):
        return client.get("/api/data/analysis", headers=_as(owner))


def test_analysis_adds_the_configured_models_narrative(function_client, stocked, language_model):
    FakeLanguageModel.behaviour, FakeLanguageModel.requests = "answer", []
    response = _analysis_with(function_client, language_model, stocked)
    analysis = response.get_json()
    assert analysis["narrative"] == "Crazing dominates; check roll 7." and analysis["narrative_source"] == "llm"
    [sent] = FakeLanguageModel.requests
    assert sent["path"] == "/v1/chat/completions" and sent["authorization"] == f"Bearer {SECRET}"
    assert sent["body"]["model"] == "tiny" and json.loads(sent["body"]["messages"][1]["content"])["records"] == 7
    assert SECRET not in response.get_data(as_text=True)


@pytest.mark.parametrize("behaviour", ["fail", "nonsense", "slow", "unreachable"])
def test_a_failing_model_leaves_the_computed_summary(function_client, stocked, language_model, behaviour, caplog):
    FakeLanguageModel.behaviour = behaviour
    url = "http://127.0.0.1:9/v1" if behaviour == "unreachable" else language_model
    caplog.set_level("DEBUG")
    response = _analysis_with(function_client, url, stocked, VISIONFN_ANALYSIS_LLM_TIMEOUT="1")
    assert response.status_code == 200
    analysis = response.get_json()
    assert analysis["narrative"] is None and analysis["narrative_source"] == "computed"
    assert analysis["narrative_error"].startswith("The language model gave no narrative")
    assert analysis["records"] == 7 and analysis["summary"].startswith("7 records")
    assert SECRET not in response.get_data(as_text=True)
    assert SECRET not in caplog.text and "narrative unavailable" in caplog.text
