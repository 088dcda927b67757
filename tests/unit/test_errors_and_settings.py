"""The error hierarchy's shapes, fault injection and the settings object."""

import pytest
from pydantic import ValidationError

from shared.platform.errors import InjectedFault, RequestValidationFailed, TaskNotFound
from shared.platform.faults import inject_fault_if_requested
from shared.platform.pages import ListQuery
from shared.platform.settings import Settings
from shared.thumbnails import ThumbnailSettings


@pytest.mark.parametrize(
    ("query", "field", "error_type"),
    [
        ({"limit": "0"}, "limit", "greater_than_equal"),
        ({"limit": "201"}, "limit", "less_than_equal"),
        ({"offset": "-1"}, "offset", "greater_than_equal"),
        ({"limit": "many"}, "limit", "int_parsing"),
    ],
)
def test_validation_errors_keep_fastapi_shape(query, field, error_type):
    with pytest.raises(ValidationError) as caught:
        ListQuery.model_validate(query)
    error = RequestValidationFailed.from_pydantic(caught.value, "query")
    assert error.status == 422
    (detail,) = error.body()["detail"]
    assert detail["type"] == error_type
    assert detail["loc"] == ["query", field]
    assert detail["input"] == query[field]
    assert set(detail) >= {"type", "loc", "msg", "input"}


def test_task_not_found_body():
    assert TaskNotFound("x").body() == {"detail": "Task not found"}
    assert TaskNotFound("x").status == 404


@pytest.mark.parametrize(
    ("enabled", "metadata", "receive_count", "fails"),
    [
        (False, {"visionfn-fail-attempts": "5"}, 1, False),
        (True, {}, 1, False),
        (True, {"visionfn-fail-attempts": "1"}, 1, True),
        (True, {"visionfn-fail-attempts": "1"}, 2, False),
        (True, {"visionfn-fail-attempts": "99"}, 3, True),
    ],
)
def test_fault_injection(enabled, metadata, receive_count, fails):
    settings = Settings(fault_injection=enabled)
    if fails:
        with pytest.raises(InjectedFault):
            inject_fault_if_requested(metadata, receive_count, settings)
    else:
        inject_fault_if_requested(metadata, receive_count, settings)


def test_settings_read_standard_and_prefixed_variables(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("VISIONFN_BUCKET", "b")
    monkeypatch.setenv("VISIONFN_GATEWAY_PORT", "9999")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.aws_endpoint_url == "http://127.0.0.1:4566"
    assert (settings.bucket, settings.gateway_port) == ("b", 9999)


def test_settings_reject_bad_values(monkeypatch):
    monkeypatch.setenv("VISIONFN_THUMBNAIL_MAX_SIDE", "2")
    with pytest.raises(ValidationError):
        ThumbnailSettings()
