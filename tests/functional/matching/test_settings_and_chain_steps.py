"""The settings function through the test client, against Postgres: settings round trip and become
a submission's defaults, concurrent first puts, errors; and a chain's steps validated once, with
the owner's settings, where the form arrives."""

import json

from shared.matching.defaults import ToolDefaults
from shared.matching.steps import read_steps
from tests.conftest import TEST_OWNER
from tests.functional.matching.inputs_and_queues import _template_form

# --- settings -------------------------------------------------------------------------------------


def test_settings_round_trip_and_become_submission_defaults(function_client, match_client):
    settings = function_client("settings")
    assert settings.get("/api/v1/settings/feature").get_json() == {
        "tool": "feature",
        "params": {"detector": "SIFT", "matcher": "FLANN", "ratio_threshold": 0.75, "max_matches": 200},
    }
    try:
        put = settings.put("/api/v1/settings/template", json={"threshold": 0.6, "method": "TM_SQDIFF_NORMED"})
        assert put.status_code == 200
        stored = {"method": "TM_SQDIFF_NORMED", "threshold": 0.6, "max_results": 20, "use_grayscale": True}
        assert put.get_json() == {"tool": "template", "params": stored}
        assert settings.get("/api/v1/settings/template").get_json()["params"] == stored
        client = match_client("template")
        assert client.post("/api/v1/match/template", data=_template_form()).get_json()["params"] == stored
        given = client.post("/api/v1/match/template", data={**_template_form(), "threshold": "0.95"}).get_json()["params"]
        assert given == {**stored, "threshold": 0.95}
    finally:
        settings.put("/api/v1/settings/template", json={})


def test_concurrent_first_puts_of_settings_all_succeed(database_url):
    import threading

    from shared.matching.defaults import ToolDefaults
    from shared.matching.tables import ToolSettings
    from shared.platform.db.engine import session_scope

    defaults = ToolDefaults(database_url)
    with session_scope(database_url) as session:
        session.query(ToolSettings).filter_by(owner="racer", tool="surface").delete()
    barrier, errors = threading.Barrier(8), []

    def put(index: int) -> None:
        barrier.wait()
        try:
            defaults.put("surface", "racer", {"num_angles": 10 + index})
        except Exception as error:  # what the test looks for
            errors.append(error)

    threads = [threading.Thread(target=put, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert 10 <= defaults.get("surface", "racer").num_angles < 18
    finally:
        defaults.put("surface", "racer", {})


def test_settings_errors(function_client):
    settings = function_client("settings")
    invalid = settings.put("/api/v1/settings/surface", json={"num_angles": 0, "use_icp": "maybe"})
    assert invalid.status_code == 422
    assert sorted(item["loc"] for item in invalid.get_json()["detail"]) == [["body", "num_angles"], ["body", "use_icp"]]
    unknown = settings.get("/api/v1/settings/chain")
    assert unknown.status_code == 404 and "template, feature, surface" in unknown.get_json()["detail"]
    assert settings.put("/api/v1/settings/template", data="threshold=1").status_code == 400
    assert settings.put("/api/v1/settings/template", json=[1, 2]).status_code == 400
    assert settings.get("/api/v1/settings/template").get_json()["params"]["threshold"] == 0.8  # unchanged


# --- chain steps: validated once, where the form arrives ------------------------------------------


def test_chain_steps_take_the_owners_settings_and_bad_ones_are_one_422(function_client, database_url):
    settings = function_client("settings")
    try:
        assert settings.put("/api/v1/settings/template", json={"threshold": 0.6}).status_code == 200
        steps = read_steps(
            '[{"tool": "template"}, {"tool": "template", "params": {"threshold": 0.95}}]', ToolDefaults(database_url).of_owner(TEST_OWNER)
        )  # as match_chain reads its form
        assert [step.params.threshold for step in steps] == [0.6, 0.95]
    finally:
        settings.put("/api/v1/settings/template", json={})
    bad = [{"tool": "template", "params": {"threshold": 7}}, {"tool": "feature", "params": {"colour": 1}}, {"tool": "ocr"}]
    answer = function_client("match_chain").post("/api/v1/match/chain", data={**_template_form(), "steps": json.dumps(bad), "note": "x"})
    assert answer.status_code == 422
    detail = answer.get_json()["detail"]
    assert [item["loc"] for item in detail] == [
        ["body", "note"],
        ["body", "steps", 0, "params", "threshold"],
        ["body", "steps", 1, "params", "colour"],
        ["body", "steps", 2, "tool"],
    ]
    assert all({"type", "msg", "input"} <= item.keys() for item in detail)
