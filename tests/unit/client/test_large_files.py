"""Large files through the client: through the bucket above the synchronous limit, downloads by a
303 to the bucket, never with the API key."""

from __future__ import annotations

import json

import pytest
from visionfn import ApiError
from visionfn.models import INLINE_FILES_BYTES, SYNC_BODY_BYTES, bucket_files, upload_content_type

from tests.unit.client.scripted_server import TASK, Scripted, client_of


@pytest.fixture
def bucket():
    """A second host, as the bucket is: what reaches it shows whether the API key went along."""
    running = Scripted()
    yield running
    running.shutdown()
    running.server_close()


def ticket(bucket: Scripted, key: str, content_type: str) -> dict:
    return {
        "key": key,
        "url": f"{bucket.url}/visionfn-data",
        "expires_at": "2026-12-06T03:00:00Z",
        "fields": {"Content-Type": content_type, "key": key, "AWSAccessKeyId": "test", "policy": "eyJ9", "signature": "c2ln"},
    }


def test_the_inline_limit_leaves_room_for_the_rest_of_the_form():
    assert SYNC_BODY_BYTES == 4_706_304 and SYNC_BODY_BYTES - 256 * 1024 < INLINE_FILES_BYTES < SYNC_BODY_BYTES


@pytest.mark.parametrize(
    ("sizes", "through_bucket"),
    [
        ({"video": 1000}, set()),
        ({"video": INLINE_FILES_BYTES}, set()),  # exactly the limit still goes in the request
        ({"video": INLINE_FILES_BYTES + 1}, {"video"}),
        ({"image": 3_000_000, "template": 2_000_000}, {"image"}),  # each fits, not both: the larger goes
        ({"image": 100, "template": 9_000_000}, {"template"}),
        ({"image": 6_000_000, "template": 5_000_000}, {"image", "template"}),
    ],
)
def test_files_go_through_the_bucket_largest_first_until_the_rest_fit(sizes, through_bucket):
    assert bucket_files(sizes) == through_bucket


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("street.mp4", "video/mp4"),
        ("clip.MOV", "video/quicktime"),
        ("scene.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("model.ply", "application/octet-stream"),
        ("upload", "application/octet-stream"),
        ("notes.pdf", "application/octet-stream"),
    ],
)
def test_an_upload_declares_the_names_type_or_octet_stream(name, content_type):
    assert upload_content_type(name) == content_type


def test_a_video_below_the_limit_is_sent_in_the_request(server, bucket):
    server.then(201, {**TASK, "tool": "face_video"})
    client, _ = client_of(server)
    client.anonymize_video(("street.mp4", b"v" * INLINE_FILES_BYTES), mode="solid")
    assert [request["path"] for request in server.requests] == ["/api/v1/faces/video"]
    assert b'name="video"; filename="street.mp4"' in server.requests[0]["body"]
    assert b"video_key" not in server.requests[0]["body"] and bucket.requests == []


def test_a_video_above_the_limit_goes_through_the_bucket_and_the_form_names_its_key(server, bucket, tmp_path):
    video = tmp_path / "street.mp4"
    video.write_bytes(b"v" * (INLINE_FILES_BYTES + 1))
    key = "incoming/" + "1" * 24 + "/" + "2" * 32 + "/street.mp4"
    server.then(201, ticket(bucket, key, "video/mp4")).then(201, {**TASK, "tool": "face_video"})
    bucket.then(204)
    client, _ = client_of(server)

    task = client.anonymize_video(video, mode="solid")

    assert task.tool == "face_video"
    asked, submitted = server.requests
    assert asked["path"] == "/api/v1/uploads" and json.loads(asked["body"]) == {
        "filename": "street.mp4",
        "content_type": "video/mp4",
        "size": INLINE_FILES_BYTES + 1,
    }
    (sent,) = bucket.requests
    assert (sent["method"], sent["path"]) == ("POST", "/visionfn-data")
    assert "Authorization" not in sent["headers"] and "X-API-Key" not in sent["headers"]
    order = [sent["body"].index(f'name="{name}"'.encode()) for name in ("Content-Type", "key", "policy", "signature", "file")]
    assert order == sorted(order)  # the policy's fields first, the file last
    assert b'name="file"; filename="street.mp4"\r\nContent-Type: video/mp4\r\n\r\nvvv' in sent["body"]
    assert submitted["path"] == "/api/v1/faces/video" and submitted["headers"]["Authorization"] == "Bearer vfn_test"
    assert f'name="video_key"\r\n\r\n{key}'.encode() in submitted["body"] and b'name="mode"\r\n\r\nsolid' in submitted["body"]
    assert b'name="video";' not in submitted["body"] and len(submitted["body"]) < 2000


def test_a_chain_sends_only_its_large_file_through_the_bucket(server, bucket):
    key = "incoming/" + "1" * 24 + "/" + "3" * 32 + "/scene.png"
    server.then(201, ticket(bucket, key, "image/png")).then(201, {**TASK, "tool": "chain"})
    bucket.then(204)
    client, _ = client_of(server)
    client.match_chain(("scene.png", b"i" * 5_000_000), ("icon.png", b"tpl"), [{"tool": "template"}])
    submitted = server.requests[1]["body"]
    assert f'name="image_key"\r\n\r\n{key}'.encode() in submitted
    assert b'name="template"; filename="icon.png"' in submitted and b'name="image";' not in submitted
    assert b'name="steps"\r\n\r\n[{"tool": "template"}]' in submitted


@pytest.mark.parametrize(
    ("submit", "fields"),
    [
        (lambda client, big: client.match_template(big, ("t.png", b"t")), ["image_key", "template"]),
        (lambda client, big: client.match_feature(("q.png", b"q"), big), ["query_image", "train_image_key"]),
        (lambda client, big: client.match_surface(big, ("scene.ply", b"ply")), ["model_file_key", "scene_file"]),
    ],
)
def test_every_matching_submit_switches_the_same_way(server, bucket, submit, fields):
    server.then(201, ticket(bucket, "k", "application/octet-stream")).then(201, TASK)
    bucket.then(204)
    client, _ = client_of(server)
    submit(client, ("big.ply", b"x" * (INLINE_FILES_BYTES + 1)))
    assert server.requests[0]["path"] == "/api/v1/uploads" and len(bucket.requests) == 1
    body = server.requests[1]["body"]
    assert [field for field in fields if f'name="{field}"'.encode() in body] == fields


def test_a_refused_upload_reads_as_the_buckets_error_and_nothing_is_submitted(server, bucket):
    server.then(201, ticket(bucket, "k", "video/mp4"))
    bucket.then(
        400,
        b"<?xml version='1.0' encoding='utf-8'?>\n<Error><Code>EntityTooLarge</Code><Message>Your proposed "
        b"upload exceeds the maximum allowed size</Message></Error>",
        Content_Type="application/xml",
    )
    client, _ = client_of(server)
    with pytest.raises(ApiError, match=r"400: the bucket \(127\.0\.0\.1:\d+\) refused it: EntityTooLarge: Your proposed upload"):
        client.anonymize_video(("street.mp4", b"v" * (INLINE_FILES_BYTES + 1)))
    assert [request["path"] for request in server.requests] == ["/api/v1/uploads"]


def test_a_large_download_follows_the_303_to_the_bucket_without_the_key(server, bucket, tmp_path):
    uid = "d" * 32
    link = f"{bucket.url}/visionfn-data/uploads/{uid}/street.mp4?X-Amz-Signature=abc&response-content-disposition=attachment"
    server.then(303, b"", Location=link).then(303, b"", Location=link)
    bucket.then(200, b"MP4" * 1000).then(200, b"MP4" * 1000)
    client, _ = client_of(server)
    client.session.headers["X-API-Key"] = "vfn_test"  # a key in any header stays with the API

    assert client.file_bytes(f"uploads/{uid}/street.mp4") == b"MP4" * 1000
    path = client.download(f"uploads/{uid}/street.mp4", tmp_path)

    assert path == tmp_path / "street.mp4" and path.read_bytes() == b"MP4" * 1000
    assert [request["path"] for request in server.requests] == [f"/api/v1/files/uploads/{uid}/street.mp4"] * 2
    assert [request["path"] for request in bucket.requests] == [link.removeprefix(bucket.url)] * 2
    for request in bucket.requests:
        assert {"Authorization", "X-API-Key"}.isdisjoint(request["headers"]), request["headers"]
