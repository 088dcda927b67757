"""API keys and owners on the real stack: the gateway checks the key, functions only answer the platform."""

import re
import time
import uuid

import requests

from infra.template import function_specs, load_template
from shared.platform.keys import ApiKeys
from shared.platform.tasks import TaskRepository
from tests.conftest import load_event


def _as(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_every_route_but_health_needs_a_valid_key(platform):
    assert requests.get(f"{platform.gateway}/health", timeout=10).status_code == 200
    for headers in ({}, _as("vfn_not-a-real-key"), {"Authorization": "Basic dXNlcjpwYXNz"}, {"X-API-Key": ""}):
        response = requests.get(f"{platform.gateway}/api/v1/tasks", headers=headers, timeout=10)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="visionfn"'
        assert "API key" in response.json()["detail"]
    assert requests.get(f"{platform.gateway}/api/v1/tasks", headers={"X-API-Key": platform.key}, timeout=10).status_code == 200
    missing_key = requests.post(f"{platform.gateway}/api/v1/match/template", files={"image": b"x"}, timeout=10)
    assert missing_key.status_code == 401  # before any file is looked at


def test_every_keyed_route_of_the_template_refuses_a_missing_or_wrong_key(platform):
    """Each route the template declares without `Auth: {Authorizer: NONE}` (chain, webhooks,
    inspection, data, video included) answers 401 before its function sees the request."""
    routes = [route for spec in function_specs(load_template()) for route in spec.routes if not route.public]
    assert len(routes) > 20
    for route in routes:
        path = re.sub(r"\{\w+\+?\}", "a" * 32, route.path)
        for headers in ({}, _as("vfn_not-a-real-key")):
            response = requests.request(route.method, platform.gateway + path, headers=headers, timeout=10)
            assert response.status_code == 401, (route, headers, response.text)


def test_another_owners_tasks_files_and_settings_do_not_exist_for_a_key(platform, database_url):
    mine = TaskRepository(database_url).create("template", {}, [], owner="local").uid
    _record, key = ApiKeys(database_url).create("mallory", "test")
    theirs = {**_as(key), "X-Visionfn-Owner": "local"}  # a forged owner header is replaced by the gateway
    assert requests.get(f"{platform.gateway}/api/v1/tasks/{mine}", headers=theirs, timeout=10).status_code == 404
    listed = requests.get(f"{platform.gateway}/api/v1/tasks", headers=theirs, timeout=10).json()
    assert mine not in [task["uid"] for task in listed["tasks"]]
    assert requests.get(f"{platform.gateway}/api/v1/files/results/{mine}/x.png", headers=theirs, timeout=10).status_code == 404
    assert (
        requests.get(f"{platform.gateway}/api/v1/files/results/{mine}/step-1/x.png", headers=theirs, timeout=10).status_code == 404
    )  # a chain step's file
    assert platform.http.get(f"{platform.gateway}/api/v1/tasks/{mine}", timeout=10).status_code == 200


def test_a_revoked_key_stops_working(platform, database_url):
    keys = ApiKeys(database_url)
    record, key = keys.create("temporary", "test")
    assert requests.get(f"{platform.gateway}/api/v1/tasks", headers=_as(key), timeout=10).status_code == 200
    assert keys.revoke(record.id)
    # the gateway remembers a key for VISIONFN_KEY_CACHE_SECONDS (1 s in the tests): asked until it forgets
    deadline, statuses = time.monotonic() + 15, []
    while not statuses or statuses[-1] != 401:
        assert time.monotonic() < deadline, f"a revoked key still answered {statuses[-3:]} after 15 s"
        time.sleep(0.1)
        statuses.append(requests.get(f"{platform.gateway}/api/v1/tasks", headers=_as(key), timeout=10).status_code)
    assert set(statuses) <= {200, 401}, statuses  # served from the cache, then refused: nothing else
    assert [item.revoked_at is not None for item in keys.list("temporary")] == [True]


def test_a_function_port_refuses_what_the_platform_did_not_send(platform):
    """A local process that forges an SQS batch (or any request) straight to a function is refused."""
    batch = load_event("sqs_match_job")
    batch["Records"][0]["body"] = f'{{"uid": "{uuid.uuid4().hex}"}}'
    for function, method, path in (
        ("match_template", "POST", "/events"),
        ("tasks", "GET", "/api/v1/tasks"),
        ("thumbnail", "POST", "/events"),
    ):
        url = platform.state["functions"][function] + path
        response = requests.request(method, url, json=batch, headers={"X-Visionfn-Owner": "local"}, timeout=10)
        assert response.status_code == 401, (function, response.text)
        assert "through the platform only" in response.json()["detail"]
