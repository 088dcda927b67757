"""Downloads through the test client: files are their owner's own, served as attachments of their
sniffed type; tasks and settings belong to their owner; a route without an owner is 401."""

import uuid

from shared.platform.storage import get_object_store
from shared.platform.tasks import TaskRepository
from tests.conftest import act_as, as_owner
from tests.functional.matching.inputs_and_queues import _png, _template_form


def test_files_are_the_owners_own_served_as_attachments_of_their_sniffed_type(function_client, database_url):
    uid = TaskRepository(database_url).create("template", {}, [], owner="tester").uid
    png, html = _png(4, 4), b"<html><script>alert(1)</script></html>"
    get_object_store().put(f"results/{uid}/matches.png", png, "image/png")
    get_object_store().put(f"uploads/{uid}/page.png", html, "text/html")  # an HTML page named .png
    client = function_client("tasks")
    picture = client.get(f"/api/v1/files/results/{uid}/matches.png")
    assert (picture.status_code, picture.data, picture.mimetype) == (200, png, "image/png")
    assert picture.headers["X-Content-Type-Options"] == "nosniff"
    assert picture.headers["Content-Disposition"] == 'attachment; filename="matches.png"'
    page = client.get(f"/api/v1/files/uploads/{uid}/page.png")
    assert page.status_code == 200 and page.mimetype == "application/octet-stream"  # never text/html
    other = client.get(f"/api/v1/files/results/{uid}/matches.png", headers=as_owner("somebody-else"))
    assert other.status_code == 404  # another owner's file does not exist for them
    for missing in (
        f"results/{uuid.uuid4().hex}/none.png",
        f"results/{uid}/none.png",
        "inbox/faces/x.jpg",
        "results/../inbox/x",
        "results//x",
        f"outputs/faces/{uid}.jpg",
    ):
        answer = client.get(f"/api/v1/files/{missing}")
        assert answer.status_code == 404, missing


def test_tasks_and_settings_belong_to_their_owner(function_client, match_client):
    submitted = match_client("template").post("/api/v1/match/template", data=_template_form()).get_json()
    tasks_function, settings = function_client("tasks"), function_client("settings")
    stranger = as_owner("somebody-else")
    assert tasks_function.get(f"/api/v1/tasks/{submitted['uid']}").status_code == 200
    assert tasks_function.get(f"/api/v1/tasks/{submitted['uid']}", headers=stranger).status_code == 404
    assert submitted["uid"] not in [t["uid"] for t in tasks_function.get("/api/v1/tasks?limit=200", headers=stranger).get_json()["tasks"]]
    try:
        assert settings.put("/api/v1/settings/template", json={"threshold": 0.5}).status_code == 200
        assert settings.get("/api/v1/settings/template", headers=stranger).get_json()["params"]["threshold"] == 0.8
        assert settings.get("/api/v1/settings/template").get_json()["params"]["threshold"] == 0.5
    finally:
        settings.put("/api/v1/settings/template", json={})


def test_without_an_owner_a_route_is_401(function_client):
    client = function_client("tasks")
    act_as(client, None)
    response = client.get("/api/v1/tasks")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
