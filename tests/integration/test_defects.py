"""Defect inspection and the data service on the real stack: a batch through the gateway with a
corrupt file among good ones, the inbox/defects/ trigger recording once, the data endpoints,
hostile input, and another owner seeing none of it."""

import base64
import datetime as dt
import io
import uuid

import pytest
import requests
from PIL import Image

from shared.defects.records import DefectRecords
from shared.platform.keys import ApiKeys
from tests.conftest import SHARED_DATA, event_file
from tests.integration.conftest import drained, object_exists, wait_for

NEU_IMAGES = SHARED_DATA / "defects" / "neu_det" / "images"


def neu_images(count: int) -> list[tuple[str, bytes]]:
    """Real NEU-DET pictures, one of each class in turn."""
    labels = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
    return [(path.name, path.read_bytes()) for path in (sorted(NEU_IMAGES.glob(f"{labels[n % 6]}_*.jpg"))[n // 6] for n in range(count))]


@pytest.fixture(scope="module")
def owner(database_url):
    """A fresh owner and an HTTP session with its key."""
    name = f"inspector-{uuid.uuid4().hex[:8]}"
    _record, key = ApiKeys(database_url).create(name, "defects test")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return name, session


@pytest.fixture(scope="module")
def stranger(database_url):
    _record, key = ApiKeys(database_url).create(f"stranger-{uuid.uuid4().hex[:8]}", "defects test")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


@pytest.fixture(scope="module")
def batch_answer(platform, owner):
    """The seed's client, unchanged: requests.post(url, files=[("images", (name, bytes)), ...])."""
    _name, http = owner
    files = neu_images(3)
    files.insert(1, ("corrupt.jpg", event_file("truncated.jpg")))
    response = http.post(f"{platform.gateway}/api/detect", files=[("images", item) for item in files], timeout=120)
    return files, response


def test_a_batch_with_a_corrupt_file_inspects_the_good_ones(batch_answer, s3, bucket):
    files, response = batch_answer
    assert response.status_code == 200, response.text
    results = response.json()
    assert [entry["name"] for entry in results] == [name for name, _ in files]
    corrupt = results[1]
    assert corrupt["error"] == "Invalid image data for corrupt.jpg" and corrupt["status"] == 400
    for entry in (results[0], results[2], results[3]):
        assert {"defect_count", "dice", "labels", "name", "processing_time", "result_image", "defects", "figId"} <= set(entry)
        assert Image.open(io.BytesIO(base64.b64decode(entry["result_image"]))).size == (200, 200)
        stored = s3.get_object(Bucket=bucket, Key=entry["resFig"])
        assert stored["ContentType"] == "image/png" and stored["Body"].read() == base64.b64decode(entry["result_image"])


def test_the_batch_is_in_the_owners_data(platform, batch_answer, owner):
    _files, response = batch_answer
    inspected = [entry for entry in response.json() if "figId" in entry]
    _name, http = owner
    recent = http.get(f"{platform.gateway}/api/data/getRecent", timeout=30).json()
    assert {entry["figId"] for entry in inspected} <= {record["figId"] for record in recent}
    today = dt.datetime.now(dt.UTC).date().isoformat()
    days = http.get(f"{platform.gateway}/api/data/statByDate", timeout=30).json()
    assert len(days) == 15 and days[-1]["stat_date"] == today and days[-1]["record_count"] >= 3
    found = http.get(
        f"{platform.gateway}/api/data/search", params={"name": inspected[0]["name"][:-4], "startDate": today}, timeout=30
    ).json()
    assert found["total"] == 1 and found["data"][0]["figId"] == inspected[0]["figId"]
    paginated = http.get(f"{platform.gateway}/api/data/getPaginated", params={"limit": 1, "page": 1}, timeout=30)
    assert paginated.headers["Deprecation"] == "@1795737600" and paginated.json()["total"] >= 3
    analysis = http.get(f"{platform.gateway}/api/data/analysis", timeout=30).json()
    assert analysis["records"] >= 3 and analysis["narrative_source"] == "computed" and analysis["summary"]


def test_inbox_upload_is_recorded_once_for_its_owner(platform, aws, database_url, owner, s3, bucket):
    name, http = owner
    key = f"inbox/defects/{name}/line 3/{uuid.uuid4().hex}.jpg"
    # the first delivery fails on purpose: the redelivery does the work, once
    s3.put_object(Bucket=bucket, Key=key, Body=neu_images(1)[0][1], Metadata={"visionfn-fail-attempts": "1"})
    output = f"outputs/defects/{key.removeprefix('inbox/defects/')}.png"
    wait_for(lambda: object_exists(s3, bucket, output), timeout=60)
    wait_for(lambda: drained(aws, "visionfn-test-defect-inbox"), timeout=60)
    [record] = DefectRecords(database_url).by_source(key)
    assert record.resFig == output
    assert f"{key}: injected failure on delivery 1 of 1" in platform.log("defect_detect")
    assert len([line for line in platform.log("defect_detect").splitlines() if f"{key}: " in line and " -> " in line]) == 1
    s3.put_object(Bucket=bucket, Key=key, Body=neu_images(1)[0][1])  # the same content again: the same version (ETag)
    wait_for(lambda: drained(aws, "visionfn-test-defect-inbox"), timeout=60)
    assert len(DefectRecords(database_url).by_source(key)) == 1
    recent = http.get(f"{platform.gateway}/api/data/getRecent", timeout=30).json()
    assert record.figId in [entry["figId"] for entry in recent]


def test_another_owner_sees_none_of_it(platform, batch_answer, stranger):
    assert stranger.get(f"{platform.gateway}/api/data/getRecent", timeout=30).json() == []
    assert stranger.get(f"{platform.gateway}/api/data/search", timeout=30).json() == {"total": 0, "data": []}
    assert sum(day["record_count"] for day in stranger.get(f"{platform.gateway}/api/data/statByDate", timeout=30).json()) == 0
    assert stranger.get(f"{platform.gateway}/api/data/getPaginated", timeout=30).json()["total"] == 0
    assert stranger.get(f"{platform.gateway}/api/data/analysis", timeout=30).json()["records"] == 0


def test_data_and_detect_need_a_key(platform):
    for method, path in (("GET", "/api/data/getRecent"), ("GET", "/api/data/analysis"), ("POST", "/api/detect")):
        assert requests.request(method, f"{platform.gateway}{path}", timeout=10).status_code == 401


@pytest.mark.parametrize(
    ("files", "status", "field"),
    [
        ([], 400, "error"),  # no images
        ([("images", ("a.txt", b"hello"))], 400, "error"),
        ([("images", ("", b""))], 400, "error"),
        ([("images", (f"{n}.jpg", b"x")) for n in range(33)], 413, "detail"),  # over VISIONFN_DEFECT_MAX_BATCH_IMAGES
        ([("images", ("plate.ppm", b"P6\n2 2\n255\n" + bytes(12)))], 415, "error"),
        ([("image", ("a.jpg", b"x"))], 400, "error"),  # the wrong field
    ],
)
def test_hostile_batches_get_a_clear_4xx(platform, owner, files, status, field):
    _name, http = owner
    response = http.post(f"{platform.gateway}/api/detect", files=files or {"nothing": ("", b"")}, timeout=60)
    assert response.status_code == status, response.text
    assert response.json()[field]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=abc",
        "limit=100000000000000000000",
        "page=0",
        "page=-1",
        "num=x",
        "startDate=2026-02-30",
        "startDate=2026-01-05&endDate=2026-01-01",
        "name=%00",
    ],
)
def test_hostile_queries_get_422(platform, owner, query):
    _name, http = owner
    response = http.get(f"{platform.gateway}/api/data/search?{query}", timeout=30)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "query"
