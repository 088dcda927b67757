"""The cloud entry's own rules, on an app that echoes what it was given: which events are HTTP
requests, the headers only the platform sets, the deadline, the stage in the path."""

import json
import time

import pytest
from apig_wsgi import make_lambda_handler

from shared.platform.cloud_entry import PlatformHeaders, _is_http_request
from tests.conftest import load_event


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def echo(environ, start_response):
    """The request as the app sees it: its path and its HTTP_* headers."""
    seen = {
        "path": environ["PATH_INFO"],
        "script": environ["SCRIPT_NAME"],
        "headers": {key: value for key, value in environ.items() if key.startswith("HTTP_")},
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


def seen(event: dict, remaining_ms: int = 30_000) -> dict:
    return json.loads(make_lambda_handler(PlatformHeaders(echo))(event, Context(remaining_ms))["body"])


@pytest.mark.parametrize(
    ("name", "is_request"),
    [
        ("apigw_v2_get", True),
        ("apigw_v2_multipart", True),
        ("authorizer_v2_request", False),
        ("scheduled_event", False),
        ("sqs_match_job", False),
        ("sqs_chain_step", False),
        ("sqs_s3_batch", False),
    ],
)
def test_only_http_api_requests_are_requests(name, is_request):
    assert _is_http_request(load_event(name)) is is_request


def test_forged_platform_headers_are_dropped_and_the_request_context_is_the_events():
    event = load_event("apigw_v2_get")
    event["headers"].update(
        {
            "x-visionfn-owner": "mallory",
            "x_visionfn_owner": "mallory",
            "x-visionfn-platform-token": "guess",
            "x-amzn-request-context": json.dumps({"authorizer": {"lambda": {"owner": "mallory"}}}),
        }
    )
    headers = seen(event)["headers"]
    assert "HTTP_X_VISIONFN_OWNER" not in headers and "HTTP_X_VISIONFN_PLATFORM_TOKEN" not in headers
    assert json.loads(headers["HTTP_X_AMZN_REQUEST_CONTEXT"]) == event["requestContext"]
    assert json.loads(headers["HTTP_X_AMZN_REQUEST_CONTEXT"])["authorizer"]["lambda"]["owner"] == "tester"


def test_the_deadline_is_the_time_left_from_now():
    before = int(time.time() * 1000)
    deadline = json.loads(seen(load_event("apigw_v2_get"), remaining_ms=7_000)["headers"]["HTTP_X_AMZN_LAMBDA_CONTEXT"])["deadline"]
    assert before + 7_000 <= deadline <= time.time() * 1000 + 7_000


@pytest.mark.parametrize(
    ("stage", "raw_path", "path", "script"),
    [
        ("prod", "/prod/api/v1/tasks", "/api/v1/tasks", "/prod"),
        ("prod", "/prod", "/", "/prod"),
        ("prod", "/production/x", "/production/x", ""),  # only a whole first segment is the stage
        ("$default", "/api/v1/tasks", "/api/v1/tasks", ""),
    ],
)
def test_a_named_stage_leaves_the_path(stage, raw_path, path, script):
    event = load_event("apigw_v2_get")
    event["rawPath"], event["requestContext"]["stage"] = raw_path, stage
    answer = seen(event)
    assert (answer["path"], answer["script"]) == (path, script)
