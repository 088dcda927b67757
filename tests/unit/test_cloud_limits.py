"""The cloud's rules, kept here: who the caller is without the platform token, the limits of a
synchronous Lambda invocation behind an HTTP API, and which upload keys are a caller's."""

from __future__ import annotations

import base64
import json

import flask
import pytest

from shared.platform.access import OWNER_HEADER, PLATFORM_TOKEN_HEADER, REQUEST_CONTEXT_HEADER, caller
from shared.platform.direct_uploads import DirectUploads, UploadRequest, owner_prefix, safe_name
from shared.platform.errors import NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from shared.platform.settings import LAMBDA_PAYLOAD_BYTES, LAMBDA_SYNC_BODY_BYTES, Settings
from shared.platform.storage import StoredObject

CLOUD = Settings(platform_token=None)
LOCAL = Settings(platform_token="t0ken")


def _context(owner: object) -> str:
    return json.dumps({"authorizer": {"lambda": {"owner": owner}}, "http": {"method": "GET"}})


# --- the owner ---------------------------------------------------------------------------------
def test_in_the_cloud_a_clients_owner_header_counts_for_nothing():
    with pytest.raises(Unauthorized):
        caller({OWNER_HEADER: "local"}, CLOUD)


def test_in_the_cloud_the_authorizers_owner_wins_over_any_header():
    assert caller({REQUEST_CONTEXT_HEADER: _context("alice"), OWNER_HEADER: "local"}, CLOUD) == "alice"


@pytest.mark.parametrize(
    "context", ["", "not json", json.dumps({"authorizer": {}}), _context(""), _context(["a"]), _context(None), json.dumps([1])]
)
def test_in_the_cloud_no_usable_authorizer_context_is_401(context):
    with pytest.raises(Unauthorized):
        caller({REQUEST_CONTEXT_HEADER: context}, CLOUD)


def test_locally_the_owner_header_counts_only_beside_the_platform_token():
    assert caller({OWNER_HEADER: "bob", PLATFORM_TOKEN_HEADER: "t0ken"}, LOCAL) == "bob"
    for headers in (
        {OWNER_HEADER: "bob"},
        {OWNER_HEADER: "bob", PLATFORM_TOKEN_HEADER: "guess"},
        {REQUEST_CONTEXT_HEADER: _context("bob"), PLATFORM_TOKEN_HEADER: "guess"},
    ):
        with pytest.raises(Unauthorized):
            caller(headers, LOCAL)


# --- the synchronous limits ------------------------------------------------------------------------
def test_the_largest_synchronous_body_fits_lambdas_payload_base64_encoded_with_room_for_headers():
    encoded = len(base64.b64encode(b"x" * LAMBDA_SYNC_BODY_BYTES))
    assert encoded + 16 * 1024 <= LAMBDA_PAYLOAD_BYTES < encoded + 16 * 1024 + 4
    assert Settings().sync_body_bytes == LAMBDA_SYNC_BODY_BYTES


def test_the_limits_relax_for_deployments_without_them():
    relaxed = Settings(lambda_limits=False, max_upload_bytes=100 * 1024 * 1024)
    assert relaxed.sync_body_bytes == 100 * 1024 * 1024
    assert relaxed.sync_timeout(900) == 900
    assert Settings().sync_timeout(900) == 30 and Settings().sync_timeout(10) == 10


def test_an_answer_over_the_limit_is_refused_and_one_at_it_is_sent():
    from shared.platform.http import bounded_answer

    assert bounded_answer(flask.Response(b"x" * LAMBDA_SYNC_BODY_BYTES)).status_code == 200
    with pytest.raises(PayloadTooLarge, match="synchronous answer"):
        bounded_answer(flask.Response(b"x" * (LAMBDA_SYNC_BODY_BYTES + 1)))


# --- upload keys ---------------------------------------------------------------------------------
class FakeStore:
    """An object store of a few objects: ``(data, content type)`` by key."""

    bucket = "bucket"

    def __init__(self, objects: dict[str, tuple[bytes, str]]) -> None:
        self.objects = objects

    def head(self, key):
        return (len(self.objects[key][0]), self.objects[key][1]) if key in self.objects else None

    def get(self, key, max_bytes=None):
        data = self.objects[key][0]
        if max_bytes is not None and len(data) > max_bytes:
            raise PayloadTooLarge(key)
        return StoredObject(key, data, self.objects[key][1], {}, None)


def _uploads(objects) -> DirectUploads:
    return DirectUploads(FakeStore(objects), Settings())  # type: ignore[arg-type]


def test_an_owners_upload_is_read_back_and_nobody_elses():
    key = owner_prefix("alice") + "0" * 32 + "/clip.mp4"
    uploads = _uploads({key: (b"video", "video/mp4")})
    assert uploads.read("alice", key, "video", 100).data == b"video"
    assert uploads.read("alice", key, "video", 100).filename == "clip.mp4"
    with pytest.raises(NotFound):
        uploads.read("mallory", key, "video", 100)


@pytest.mark.parametrize(
    "suffix",
    [
        "../clip.mp4",
        "0" * 32 + "/../x",
        "0" * 32 + "/a/b",
        "0" * 31 + "/x",
        "0" * 32 + "/",
        "0" * 32 + "/.",
        "0" * 32 + "/..",
        "0" * 32 + "/a b",
        "0" * 32 + "/x\n",
    ],
)
def test_malformed_keys_under_the_owners_prefix_are_404(suffix):
    key = owner_prefix("alice") + suffix
    with pytest.raises(NotFound):
        _uploads({key: (b"video", "video/mp4")}).read("alice", key, "video", 100)


def test_an_upload_over_the_fields_limit_or_of_another_kind_is_refused():
    key = owner_prefix("alice") + "0" * 32 + "/clip.mp4"
    with pytest.raises(PayloadTooLarge):
        _uploads({key: (b"x" * 101, "video/mp4")}).read("alice", key, "video", 100)
    with pytest.raises(UnsupportedMediaType):
        _uploads({key: (b"x", "image/png")}).read("alice", key, "video", 100)
    assert _uploads({key: (b"x", "application/octet-stream")}).read("alice", key, "video", 100).data == b"x"


def test_owner_prefixes_are_digests_that_differ_per_owner():
    assert owner_prefix("alice") != owner_prefix("bob")
    assert "alice" not in owner_prefix("alice") and owner_prefix("../x").count("/") == 2


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("a b.mp4", "a_b.mp4"),
        ("../../x.png", "x.png"),
        ("...", "upload"),
        ("dir\\file.ply", "file.ply"),
        ("é.jpg", "jpg"),
        ("x" * 300, "x" * 100),
    ],
)
def test_safe_names_are_one_harmless_path_part(name, safe):
    assert safe_name(name) == safe


@pytest.mark.parametrize(
    "content_type", ["text/html", "application/json", "image/svg+xml; charset=utf-8", "video", "VIDEO/MP4\r\nX: y", ""]
)
def test_upload_requests_take_only_file_types_a_route_reads(content_type):
    with pytest.raises(ValueError):
        UploadRequest(filename="a", content_type=content_type, size=1)
    assert UploadRequest(filename="a", content_type="Video/MP4", size=1).content_type == "video/mp4"


# --- events -------------------------------------------------------------------------------------
def test_a_task_finished_event_fits_an_eventbridge_entry_whatever_the_result():
    from shared.platform.db.models import Task
    from shared.platform.messaging import task_finished_detail

    small = Task(uid="a" * 32, owner="o", tool="template", status="done", result_files=[], result_data={"n": 1})
    assert task_finished_detail(small)["result_data"] == {"n": 1}
    huge = Task(
        uid="a" * 32,
        owner="o",
        tool="face_video",
        status="error",
        result_files=[],
        result_data={"covered_per_frame": list(range(100_000))},
        error="e" * 300_000,
    )
    detail = task_finished_detail(huge)
    assert detail["result_data"] is None and len(json.dumps(detail)) < 256 * 1024
