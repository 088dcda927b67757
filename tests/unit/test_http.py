"""A function's HTTP layer on hostile input: valid JSON always, an encoded slash that is no
separator, a multipart part whose headers are not UTF-8 refused alone."""

from __future__ import annotations

import json

import flask
import pytest
from pydantic import BaseModel, Field, ValidationError

from shared.platform.errors import RequestValidationFailed
from shared.platform.http import UNREADABLE_HEADERS, error_response, file_parts, json_response, readable_multipart, routed_path

APP = flask.Flask(__name__)


def _strict_json(text: str):
    """JSON as the standard has it: NaN and Infinity are not in it."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))


class Threshold(BaseModel):
    threshold: float = Field(ge=0, le=1)


@pytest.mark.parametrize(
    ("sent", "echoed"), [('{"threshold": NaN}', "NaN"), ('{"threshold": Infinity}', "Infinity"), ('{"threshold": -Infinity}', "-Infinity")]
)
def test_a_validation_error_about_a_nan_is_valid_json(sent, echoed):
    with pytest.raises(ValidationError) as caught:
        Threshold.model_validate_json(sent)
    with APP.app_context():
        response = error_response(RequestValidationFailed.from_pydantic(caught.value, "body"))
    (detail,) = _strict_json(response.get_data(as_text=True))["detail"]
    assert detail["input"] == echoed and detail["loc"] == ["body", "threshold"]


def test_json_answers_are_valid_json_and_never_sniffed():
    with APP.app_context():
        response = json_response({"scores": [0.5, float("nan"), float("inf")], "nested": {"x": -float("inf")}})
    assert _strict_json(response.get_data(as_text=True)) == {"scores": [0.5, None, None], "nested": {"x": None}}
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("raw", "routed"),
    [
        ("/api/v1/settings/template%2F", "/api/v1/settings/template%2F"),
        ("/api/v1/settings/template%2f?x=1", "/api/v1/settings/template%2F"),
        ("/api/v1/files/results%2Fa%20b.png", "/api/v1/files/results%2Fa b.png"),
        ("/api/v1/files/results/a%20b.png", "/api/v1/files/results/a b.png"),
        ("/api/v1/settings/template/", "/api/v1/settings/template/"),
    ],
)
def test_an_encoded_slash_is_not_a_separator(raw, routed):
    with APP.test_request_context(raw):
        assert routed_path(flask.request) == routed


MULTIPART = (
    b'--B\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\nAAA\r\n'
    b'--B\r\nContent-Disposition: form-data; name="images"; filename="b\xff\xfe.png"\r\n\r\nBBB\r\n'
    b'--B\r\nContent-Disposition: form-data; name="note"\r\n\r\nkept\r\n'
    b'--B\r\nContent-Disposition: form-data; name="images"; filename="c.png"\r\n'
    + f"{UNREADABLE_HEADERS}: 1\r\n".encode()
    + b"\r\nCCC\r\n--B--\r\n"
)  # a client's own mark counts for nothing


def test_a_file_name_that_is_not_utf8_is_refused_alone():
    with APP.test_request_context("/api/detect", method="POST", data=MULTIPART, content_type="multipart/form-data; boundary=B"):
        request = readable_multipart(flask.request)
        parts = [(part.filename, part.unreadable is not None, part.read()) for part in file_parts(request, "images")]
        assert parts == [("a.png", False, b"AAA"), ("b\ufffd\ufffd.png", True, b"BBB"), ("c.png", False, b"CCC")]
        assert request.form.to_dict() == {"note": "kept"}


def test_a_readable_multipart_request_is_left_as_it_is():
    readable = MULTIPART.replace(b"b\xff\xfe.png", "b\u00e9.png".encode())
    with APP.test_request_context("/api/detect", method="POST", data=readable, content_type="multipart/form-data; boundary=B"):
        assert readable_multipart(flask.request) is flask.request
        assert [part.filename for part in file_parts(flask.request, "images")] == ["a.png", "b\u00e9.png", "c.png"]
