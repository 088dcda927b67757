"""One exception hierarchy; each error carries its HTTP status and a message for the client."""

from __future__ import annotations

import copy
import math
from typing import Any

from pydantic import ValidationError


class VisionFnError(Exception):
    """Base of every error this project raises on purpose. ``status`` < 500 means bad input."""

    status: int = 500

    def __init__(self, detail: Any) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def is_client_error(self) -> bool:
        return self.status < 500

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail}

    def headers(self) -> dict[str, str]:
        """Response headers that go with the error (none by default)."""
        return {}

    def about(self, subject: str) -> VisionFnError:
        """The same error, its message prefixed with what it is about (an object key, a file)."""
        about = copy.copy(self)
        about.detail = f"{subject}: {self.detail}"
        return about


class BadRequest(VisionFnError):
    status = 400


class UnreadableMessage(BadRequest):
    """A queued message whose body a function can never handle: dropped, not retried."""


class Unauthorized(VisionFnError):
    """No valid API key (or, for a function's own port, no platform token)."""

    status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="visionfn"'}


class NotAnImage(BadRequest):
    """The bytes are empty, truncated or not an image format we decode."""


class NotAPointCloud(BadRequest):
    """The bytes are not a PLY point cloud we can match (format, normals, values)."""


class NotFound(VisionFnError):
    status = 404


class TaskNotFound(NotFound):
    def __init__(self, uid: str) -> None:
        super().__init__("Task not found")
        self.uid = uid


class ObjectNotFound(NotFound):
    def __init__(self, key: str) -> None:
        super().__init__(f"Object not found: {key}")


class MethodNotAllowed(VisionFnError):
    status = 405


class PayloadTooLarge(VisionFnError):
    status = 413

    #: The ways that take what a synchronous request cannot carry.
    LARGE_FILES = (
        "For a larger file: POST /api/v1/uploads, send the file to the URL it answers, then name it "
        "as `<field>_key` (video_key, image_key, ...) on an asynchronous route (/api/v1/faces/video, "
        "/api/v1/match/*); or put it under inbox/faces/ or inbox/defects/ in the bucket."
    )

    @classmethod
    def request_body(cls, size: int | None, limit: int) -> PayloadTooLarge:
        """A body over what one synchronous invocation carries, with the ways that work."""
        sent = f"Request body is {size} bytes" if size is not None else "Request body is over the limit"
        return cls(f"{sent}; a synchronous request carries at most {limit} bytes. {cls.LARGE_FILES}")


class UnsupportedMediaType(VisionFnError):
    """An image in a format the API does not take."""

    status = 415


class RequestValidationFailed(VisionFnError):
    """422 in the shape FastAPI gives: ``{"detail": [{"type", "loc", "msg", "input"}, ...]}``."""

    status = 422

    @classmethod
    def from_pydantic(cls, error: ValidationError, location: str) -> RequestValidationFailed:
        details = []
        for item in error.errors(include_url=False):
            entry = {
                "type": item["type"],
                "loc": [location, *item["loc"]],
                "msg": item["msg"],
                "input": _json_safe(item.get("input")),
            }
            if "ctx" in item:
                entry["ctx"] = {key: _jsonable(value) for key, value in item["ctx"].items()}
            details.append(entry)
        return cls(details)

    @classmethod
    def problem(cls, type: str, loc: list[str | int], msg: str, input: Any) -> RequestValidationFailed:
        """One problem pydantic does not find (a check against the world: a URL that may not be
        reached), in the same shape: ``problem("url_refused", ["body", "url"], why, url)``."""
        return cls([{"type": type, "loc": list(loc), "msg": msg, "input": input}])


class InspectionRefused(BadRequest):
    """The defect seed's own error shape, ``{"error": ..., "details": ...}`` (with ``detail`` too, as
    every other error): no images, or not one usable image in a batch. ``status`` is the failure's
    own (400 not an image, 413 too large, 415 a format not taken)."""

    def __init__(self, error: str, details: Any = None, status: int = 400, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.details = details
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.detail, "detail": self.detail}
        if self.details is not None:
            body["details"] = self.details
        return {**body, **self.extra}


class ServiceUnavailable(VisionFnError):
    status = 503


class Busy(VisionFnError):
    """The work is held by another worker's unexpired lease: its message comes back when that
    lease lapses (its worker may have died), not a whole visibility timeout later."""

    status = 409

    def __init__(self, detail: str, retry_after_seconds: float) -> None:
        super().__init__(detail)
        self.retry_after_seconds = max(1, math.ceil(retry_after_seconds) + 1)


class LeaseLost(VisionFnError):
    """A worker's lease on a task lapsed and another attempt holds it: the worker must stop."""

    status = 409


class TimedOut(VisionFnError):
    """Work ran past its function's ``Timeout`` and was stopped."""

    status = 504


class InjectedFault(VisionFnError):
    """Raised on purpose by the fault-injection hook (tests of redelivery and DLQ)."""


#: How a number JSON cannot hold is written back to the client (the names JSON parsers that take them use).
NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return NON_FINITE[str(value)]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _json_safe(value: Any) -> Any:
    """What a client sent, as JSON can hold it: a NaN or infinite number as its name ("NaN")."""
    if isinstance(value, float):
        return _jsonable(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value
