"""Every function as Lambda runs it: ``shared.platform.cloud_entry.handler(event, context)`` (what
awslambdaric calls in the image), against the real local platform (LocalStack + Postgres), with the
events of its requests in AWS's shapes (events/): the authorizer, owners from its context only, HTTP
API requests as API Gateway sends them on the ``$default`` stage, upload notifications, defects,
settings, webhooks and the notifier, docs and console. (Task submissions and their jobs:
test_cloud_entry_jobs.py.)"""

from __future__ import annotations

import copy
import io
import json
import uuid
from base64 import b64decode

import pytest
from PIL import Image

from shared.platform import cloud_entry
from shared.platform.faults import FAIL_ATTEMPTS_METADATA
from shared.platform.idempotency import ProcessedObjects
from shared.platform.keys import ApiKeys
from shared.platform.settings import PROJECT_ROOT
from shared.platform.storage import get_object_store
from shared.platform.tasks import TaskRepository
from tests.conftest import event_file, load_event, shared_data
from tests.functional.lambda_events import (
    body_of,
    covers,
    delivered_uploads,
    form_event,
    http_event,
    json_of,
    new_owner,
    put_upload,
    upload_batch,
)
from tests.webhook_receiver import Receiver

# --- the authorizer ------------------------------------------------------------------------------


@covers(("authorizer", "authorizer"))
def test_the_authorizer_lets_a_valid_key_through_with_its_owner_and_nothing_else(cloud, database_url):
    owner = new_owner()
    _record, key = ApiKeys(database_url).create(owner, "cloud entry test")
    event = load_event("authorizer_v2_request")

    def authorize(**headers: str) -> dict:
        asked = copy.deepcopy(event)
        asked["headers"] = {name: value for name, value in asked["headers"].items() if name != "authorization"}
        asked["headers"].update(headers)
        asked["identitySource"] = list(headers.values())
        return cloud("authorizer", asked)

    assert authorize(authorization=f"Bearer {key}") == {"isAuthorized": True, "context": {"owner": owner}}
    assert authorize(**{"x-api-key": key}) == {"isAuthorized": True, "context": {"owner": owner}}
    assert authorize() == {"isAuthorized": False, "context": {"owner": ""}}
    assert authorize(authorization=f"Bearer {key}x") == {"isAuthorized": False, "context": {"owner": ""}}
    forged = authorize(**{"x-visionfn-owner": owner, "x-amzn-request-context": json.dumps({"authorizer": {"lambda": {"owner": owner}}})})
    assert forged == {"isAuthorized": False, "context": {"owner": ""}}


# --- owners in the cloud: only the authorizer's context counts -----------------------------------


@covers(("tasks", "http"))
def test_a_forged_owner_header_without_the_authorizers_context_is_401(cloud, database_url):
    victim = new_owner()
    TaskRepository(database_url).create("template", {}, [], owner=victim)
    forged = {"X-Visionfn-Owner": victim, "X-Visionfn-Platform-Token": "guess"}
    answer = cloud("tasks", http_event("GET", "/api/v1/tasks", owner=None, query="limit=200", headers=forged))
    assert answer["statusCode"] == 401, answer
    assert answer["headers"]["www-authenticate"].startswith("Bearer")
    assert victim not in answer["body"]


def test_a_forged_owner_beside_the_authorizers_context_gets_the_authorized_owners_data_only(cloud, database_url):
    tasks = TaskRepository(database_url)
    mine, theirs = new_owner(), new_owner()
    my_task = tasks.create("template", {}, [], owner=mine).uid
    their_task = tasks.create("template", {}, [], owner=theirs).uid
    forged = {
        "X-Visionfn-Owner": theirs,
        "X_Visionfn_Owner": theirs,
        "X-Visionfn-Platform-Token": "guess",
        "x-amzn-request-context": json.dumps({"authorizer": {"lambda": {"owner": theirs}}}),
    }
    listed = cloud("tasks", http_event("GET", "/api/v1/tasks", owner=mine, query="limit=200", headers=forged))
    assert listed["statusCode"] == 200, listed
    owners = {task["owner"] for task in json_of(listed)["tasks"]}
    assert owners == {mine}
    uids = [task["uid"] for task in json_of(listed)["tasks"]]
    assert my_task in uids and their_task not in uids
    theirs_asked = cloud("tasks", http_event("GET", f"/api/v1/tasks/{their_task}", owner=mine, headers=forged))
    assert (theirs_asked["statusCode"], json_of(theirs_asked)) == (404, {"detail": "Task not found"})


# --- HTTP API requests -----------------------------------------------------------------------------


def test_a_get_with_a_query_string_and_cookies_on_the_default_stage_and_on_a_named_one(cloud, database_url):
    owner = new_owner()
    uids = [TaskRepository(database_url).create("template", {"n": n}, [], owner=owner).uid for n in range(3)]
    sample = load_event("apigw_v2_get")  # as API Gateway sends it: limit=2, two cookies
    sample["requestContext"]["authorizer"]["lambda"]["owner"] = owner
    answer = cloud("tasks", sample)
    assert (answer["statusCode"], answer["isBase64Encoded"], answer["cookies"]) == (200, False, [])
    page = json_of(answer)
    assert page["total"] == 3 and len(page["tasks"]) == 2
    second = cloud(
        "tasks", http_event("GET", "/api/v1/tasks", owner, query="limit=2&offset=2", cookies=("a=b",), stage="prod")
    )  # rawPath "/prod/api/v1/tasks"
    assert json_of(second)["total"] == 3 and len(json_of(second)["tasks"]) == 1
    assert sorted(task["uid"] for task in [*page["tasks"], *json_of(second)["tasks"]]) == sorted(uids)
    invalid = cloud("tasks", http_event("GET", "/api/v1/tasks", owner, query="limit=500"))
    assert invalid["statusCode"] == 422 and json_of(invalid)["detail"][0]["loc"] == ["query", "limit"]


def test_a_binary_download_comes_back_base64(cloud, database_url):
    owner = new_owner()
    uid = TaskRepository(database_url).create("template", {}, [], owner=owner).uid
    png = event_file("landscape.png")
    get_object_store().put(f"results/{uid}/matches.png", png, "image/png")
    answer = cloud("tasks", http_event("GET", f"/api/v1/files/results/{uid}/matches.png", owner))
    assert (answer["statusCode"], answer["isBase64Encoded"]) == (200, True)
    assert b64decode(answer["body"]) == png
    assert answer["headers"]["content-type"] == "image/png"
    assert answer["headers"]["content-disposition"] == 'attachment; filename="matches.png"'


@covers(("health", "http"))
def test_health_on_its_public_route(cloud):
    answer = cloud("health", http_event("GET", "/health", owner=None))
    assert answer["statusCode"] == 200, answer
    assert json_of(answer)["status"] == "ok"


@covers(("face_detect", "http"))
def test_a_base64_multipart_upload_reaches_the_function_whole(cloud):
    answer = cloud("face_detect", load_event("apigw_v2_multipart"))  # events/files/landscape.png, min_confidence 0.5
    assert answer["statusCode"] == 200, answer
    report = json_of(answer)
    landscape = Image.open(io.BytesIO(event_file("landscape.png")))
    assert (report["width"], report["height"]) == landscape.size
    assert report["total_count"] == len(report["faces"]) == 0
    bad = cloud(
        "face_detect", form_event("/detect", "tester", [("min_confidence", "2"), ("image", ("l.png", event_file("landscape.png")))])
    )
    assert bad["statusCode"] == 422 and json_of(bad)["detail"][0]["loc"] == ["body", "min_confidence"]


@covers(("face_process", "http"))
def test_a_binary_jpeg_answer_comes_back_base64_with_its_headers(cloud):
    photo = shared_data("faces/wider_subset/images/1--Handshaking/1_Handshaking_Handshaking_1_107.jpg")
    answer = cloud("face_process", form_event("/process", "tester", [("image", ("portrait.jpg", photo))], headers={"accept": "*/*"}))
    assert (answer["statusCode"], answer["isBase64Encoded"]) == (200, True), answer.get("body", "")[:300]
    assert answer["headers"]["content-type"] == "image/jpeg"
    assert int(answer["headers"]["x-faces-count"]) >= 1
    picture = Image.open(io.BytesIO(b64decode(answer["body"])))
    assert picture.format == "JPEG" and picture.size == Image.open(io.BytesIO(photo)).size


@covers(("face_process", "sqs"))
def test_the_face_inbox_gets_its_upload_notifications(cloud, database_url):
    key = f"inbox/faces/{uuid.uuid4().hex}/landscape.png"
    batch = upload_batch([(key, put_upload(key, event_file("landscape.png")))])
    assert delivered_uploads(cloud, "face_process", batch, lambda failed: not failed) == []
    [entry] = ProcessedObjects("face_inbox", database_url).entries(key)  # here or in the platform's own: once
    assert entry.status == "done" and get_object_store().exists(entry.output_key)


@covers(("thumbnail", "sqs"))
def test_a_batch_with_one_failing_record_reports_only_that_one(cloud, database_url):
    good_key, flaky_key = (f"uploads/{uuid.uuid4().hex}/{name}.png" for name in ("good", "flaky"))
    good_etag = put_upload(good_key, event_file("landscape.png"))
    flaky_etag = put_upload(flaky_key, event_file("landscape.png"), {FAIL_ATTEMPTS_METADATA: "9"})
    batch = upload_batch([(good_key, good_etag), (flaky_key, flaky_etag)])
    good_id, flaky_id = (record["messageId"] for record in batch["Records"])
    failed = delivered_uploads(cloud, "thumbnail", batch, lambda failed: good_id not in failed)
    assert failed == [flaky_id]
    assert get_object_store().exists(good_key.replace("uploads/", "thumbnails/", 1))
    assert not get_object_store().exists(flaky_key.replace("uploads/", "thumbnails/", 1))
    [entry] = ProcessedObjects("thumbnail", database_url).entries(good_key)
    assert entry.status == "done"


def test_an_event_the_function_refuses_fails_the_invocation_with_the_reason(cloud):
    with pytest.raises(cloud_entry.EventRefused, match=r"thumbnail function answered 422 .*Records"):
        cloud("thumbnail", {"Records": "nope"})
    with pytest.raises(cloud_entry.EventRefused, match=r"sweeper function answered 400 .*SQS batch"):
        cloud("sweeper", load_event("sqs_match_job"))


# --- defects -------------------------------------------------------------------------------------


@covers(("defect_detect", "http"), ("defect_detect", "sqs"), ("defect_data", "http"))
def test_defects_inspected_by_request_and_by_inbox_then_listed_for_their_owner_only(cloud, database_url):
    owner = new_owner()
    images = sorted((PROJECT_ROOT.parent / "shared" / "data" / "defects" / "neu_det" / "images").glob("*.jpg"))[:2]
    fields = [("images", (path.name, path.read_bytes())) for path in images]
    answer = cloud("defect_detect", form_event("/api/detect", owner, fields))
    assert answer["statusCode"] == 200, answer
    assert [entry["name"] for entry in json_of(answer)] == [path.name for path in images]
    key = f"inbox/defects/{owner}/{uuid.uuid4().hex}.jpg"
    batch = upload_batch([(key, put_upload(key, images[0].read_bytes()))])
    assert delivered_uploads(cloud, "defect_detect", batch, lambda failed: not failed) == []
    recent = cloud("defect_data", http_event("GET", "/api/data/getRecent", owner, query="limit=10"))
    assert recent["statusCode"] == 200, recent
    assert sorted(entry["name"] for entry in json_of(recent)) == sorted([*(path.name for path in images), key.rsplit("/", 1)[1]])
    stranger = cloud("defect_data", http_event("GET", "/api/data/getRecent", new_owner(), query="limit=10"))
    assert json_of(stranger) == []


# --- settings, webhooks and the notifier -----------------------------------------------------------


@covers(("settings", "http"))
def test_settings_put_as_a_json_body_are_the_owners_own(cloud):
    owner = new_owner()
    put = cloud(
        "settings", http_event("PUT", "/api/v1/settings/template", owner, body=b'{"threshold": 0.55}', content_type="application/json")
    )
    assert put["statusCode"] == 200, put
    assert json_of(put)["params"]["threshold"] == 0.55
    assert json_of(cloud("settings", http_event("GET", "/api/v1/settings/template", owner)))["params"]["threshold"] == 0.55
    assert json_of(cloud("settings", http_event("GET", "/api/v1/settings/template", new_owner())))["params"]["threshold"] == 0.8


@covers(("webhooks", "http"), ("notifier", "sqs"), ("notifier", "schedule"))
def test_a_webhook_registered_gets_the_task_event_the_notifier_is_handed(cloud):
    owner, loopback = new_owner(), {"VISIONFN_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]'}
    with Receiver() as receiver:
        created = cloud(
            "webhooks",
            http_event(
                "POST",
                "/api/v1/webhooks",
                owner,
                body=json.dumps({"url": receiver.url + "/hook"}).encode(),
                content_type="application/json",
            ),
            **loopback,
        )
        assert created["statusCode"] == 201, created
        hook = json_of(created)
        assert [listed["id"] for listed in json_of(cloud("webhooks", http_event("GET", "/api/v1/webhooks", owner), **loopback))] == [
            hook["id"]
        ]
        batch = load_event("sqs_task_finished")
        event = json.loads(batch["Records"][0]["body"])
        event["detail"].update(owner=owner, uid=uuid.uuid4().hex)
        batch["Records"][0]["body"] = json.dumps(event)
        assert cloud("notifier", batch, **loopback) == {"batchItemFailures": []}
        [request] = receiver.wait_for(1)
        assert request.path == "/hook" and json.loads(request.body)["uid"] == event["detail"]["uid"]
        retries = cloud("notifier", load_event("scheduled_event"), **loopback)
        assert set(retries) == {"attempted", "delivered", "failed"}
        deleted = cloud("webhooks", http_event("DELETE", f"/api/v1/webhooks/{hook['id']}", owner), **loopback)
        assert (deleted["statusCode"], deleted["body"]) == (204, "")
        assert json_of(cloud("webhooks", http_event("GET", "/api/v1/webhooks", owner), **loopback)) == []


@covers(("docs", "http"), ("console", "http"))
def test_docs_and_console_pages_text_and_binary(cloud):
    document = cloud("docs", http_event("GET", "/openapi.json"))
    assert document["statusCode"] == 200 and "/api/v1/tasks" in json_of(document)["paths"]
    icon = cloud("docs", http_event("GET", "/docs/favicon-32x32.png"))
    assert (icon["statusCode"], icon["isBase64Encoded"]) == (200, True)
    assert b64decode(icon["body"]).startswith(b"\x89PNG")
    page = cloud("console", http_event("GET", "/", stage="prod"))  # rawPath "/prod": a named stage's root
    assert (page["statusCode"], page["isBase64Encoded"]) == (200, False)
    assert page["headers"]["content-type"].startswith("text/html") and "<html" in page["body"]
    svg = cloud("console", http_event("GET", "/console/icon.svg"))
    assert svg["statusCode"] == 200 and body_of(svg) == (PROJECT_ROOT / "functions" / "console" / "static" / "icon.svg").read_bytes()
