"""The pure parts of observability: request ids, the JSON line, EMF, the local metrics and job lines."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from infra.logs import job_lines
from infra.metrics import MetricLines, function_summary, prometheus_text
from shared.platform.access import request_id_of
from shared.platform.logs import json_formatter, log_context, valid_request_id


@pytest.mark.parametrize("value", ["abc-123", "a" * 128, "req:1/2+3=4@x.y_z"])
def test_a_safe_request_id_is_taken_as_sent(value):
    assert valid_request_id(value) == value
    assert request_id_of({"X-Request-Id": value}) == value


@pytest.mark.parametrize("value", ["", "a" * 129, "two words", "new\nline", "<script>", "é", None, 12])
def test_an_unsafe_request_id_is_replaced_by_a_new_one(value):
    assert valid_request_id(value) is None
    made = request_id_of({"X-Request-Id": value} if isinstance(value, str) else {})
    assert made != value and len(made) == 32 and valid_request_id(made) == made


def test_deployed_the_request_id_is_api_gateways_when_the_client_sent_none():
    context = json.dumps({"requestId": "JKJaXmPLvHcESHA=", "authorizer": {"lambda": {"owner": "alice"}}})
    assert request_id_of({"x-amzn-request-context": context}) == "JKJaXmPLvHcESHA="
    assert request_id_of({"x-amzn-request-context": context, "X-Request-Id": "mine"}) == "mine"
    assert len(request_id_of({"x-amzn-request-context": "not json"})) == 32


def _logged(emit) -> list[dict]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter("test_function"))
    from shared.platform.logs import _WithContext

    handler.addFilter(_WithContext())
    logger = logging.getLogger("visionfn.test_observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_context_of_the_work_in_hand():
    def emit(logger):
        with log_context(request_id="abc-123", owner="alice", absent=None):
            with log_context(task_uid="t" * 32):
                logger.info("task %s done", "t")
            logger.warning("after")
        logger.info("outside")

    inner, after, outside = _logged(emit)
    assert list(inner)[:4] == ["timestamp", "level", "function", "message"]
    assert (inner["level"], inner["function"], inner["message"]) == ("INFO", "test_function", "task t done")
    assert (inner["request_id"], inner["owner"], inner["task_uid"]) == ("abc-123", "alice", "t" * 32)
    assert "absent" not in inner and "service" not in inner
    assert after["request_id"] == "abc-123" and "task_uid" not in after  # the inner context ended
    assert "request_id" not in outside


def test_a_metric_line_is_valid_embedded_metric_format():
    from shared.platform.metrics import emit_metrics

    def emit(_logger):
        metrics_logger = logging.getLogger("visionfn.metrics")
        metrics_logger.addHandler(_logger.handlers[0])
        level, metrics_logger.level = metrics_logger.level, logging.INFO
        try:
            emit_metrics(
                "POST /x 201",
                {"function": "f", "route": "/x"},
                {"requests": (1, "Count"), "duration": (12.3456, "Milliseconds")},
                owner="alice",
            )
        finally:
            metrics_logger.removeHandler(_logger.handlers[0])
            metrics_logger.setLevel(level)

    (line,) = _logged(emit)
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "visionfn" and directive["Dimensions"] == [["function", "route"]]
    assert directive["Metrics"] == [{"Name": "requests", "Unit": "Count"}, {"Name": "duration", "Unit": "Milliseconds"}]
    assert isinstance(line["_aws"]["Timestamp"], int)
    # every metric and dimension a top-level member, as CloudWatch requires
    assert (line["function"], line["route"], line["requests"], line["duration"], line["owner"]) == ("f", "/x", 1, 12.346, "alice")


def _emf(owner: str | None, route: str, duration: float, status: int = 200) -> str:
    record = {
        "_aws": {
            "Timestamp": 0,
            "CloudWatchMetrics": [
                {
                    "Namespace": "visionfn",
                    "Dimensions": [["function", "route"]],
                    "Metrics": [
                        {"Name": "requests", "Unit": "Count"},
                        {"Name": "errors", "Unit": "Count"},
                        {"Name": "duration", "Unit": "Milliseconds"},
                    ],
                }
            ],
        },
        "function": "tasks",
        "route": route,
        "requests": 1,
        "errors": int(status >= 500),
        "duration": duration,
        **({"owner": owner} if owner else {}),
    }
    return json.dumps(record) + "\n"


def test_local_metrics_count_each_owners_own_and_the_platforms_for_everyone(tmp_path: Path):
    log = tmp_path / "tasks.log"
    log.write_text(
        _emf("alice", "/a", 10)
        + _emf("alice", "/a", 30, 500)
        + _emf("bob", "/a", 20)
        + _emf(None, "/events", 5)
        + '{"not": "emf"}\nnot json\n'
    )
    lines = MetricLines(tmp_path).read()
    alice = prometheus_text(lines.visible_to("alice")).decode()
    assert 'visionfn_requests_total{function="tasks",route="/a"} 2.0' in alice
    assert 'visionfn_errors_total{function="tasks",route="/a"} 1.0' in alice
    assert 'visionfn_requests_total{function="tasks",route="/events"} 1.0' in alice  # no owner: everyone's
    assert 'visionfn_duration_milliseconds_bucket{function="tasks",le="10",route="/a"} 1.0' in alice
    assert 'visionfn_duration_milliseconds_sum{function="tasks",route="/a"} 40.0' in alice
    bob = prometheus_text(lines.visible_to("bob")).decode()
    assert 'visionfn_requests_total{function="tasks",route="/a"} 1.0' in bob
    # read again: only what was written since counts, and a line being written waits
    with log.open("a") as file:
        file.write(_emf("bob", "/a", 40) + _emf("bob", "/a", 50)[:30])
    assert 'visionfn_requests_total{function="tasks",route="/a"} 2.0' in prometheus_text(lines.read().visible_to("bob")).decode()
    [summary] = function_summary(tmp_path)
    assert summary == {"function": "tasks", "requests": 5, "errors": 1, "p50_ms": 20.0, "p95_ms": 40.0}


def test_a_jobs_lines_are_found_by_its_request_id_or_its_task_uid_in_time_order():
    records = [
        {"timestamp": "2026-12-06T00:00:00.300", "function": "tasks", "task_uid": "t1", "request_id": "r1", "message": "done"},
        {"timestamp": "2026-12-06T00:00:00.100", "function": "gateway", "request_id": "r1", "message": "received"},
        {"timestamp": "2026-12-06T00:00:00.200", "function": "bridge", "request_ids": ["r1", "r2"], "message": "delivered"},
        {"timestamp": "2026-12-06T00:00:00.250", "function": "tasks", "task_uid": "t1", "message": "claimed"},
        {"timestamp": "2026-12-06T00:00:00.150", "function": "gateway", "request_id": "r2", "message": "another job"},
    ]
    by_request = [record["message"] for record in job_lines(records, "r1")]
    assert by_request == ["received", "delivered", "claimed", "done"]
    assert [record["message"] for record in job_lines(records, "t1")] == by_request
    assert [record["message"] for record in job_lines(records, "r2")] == ["another job", "delivered"]
