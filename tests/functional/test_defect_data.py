"""defect_data through the functions-framework test client, against Postgres: every data query,
another owner's records, hostile parameters, and the analysis with and without a language model."""

import datetime as dt
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from shared.defects.records import DefectRecords, NewRecord
from shared.platform.db.engine import session_scope
from tests.conftest import act_as, environment
from tests.functional.defect_owners import _as, _owner


@pytest.fixture(scope="module")
def data(function_client):
    return function_client("defect_data")


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
