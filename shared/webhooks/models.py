"""The webhooks' requests, answers and events (one pydantic model each)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from shared.platform.pages import ListQuery
from shared.webhooks.addresses import MAX_URL_LENGTH, parse_url

EventName = Literal["task.done", "task.error"]
EVENT_NAMES: tuple[EventName, ...] = ("task.done", "task.error")
PING = "ping"
#: pending (due at ``next_attempt_at``) -> sending (a sender holds its lease) -> delivered | failed
DeliveryState = Literal["pending", "sending", "delivered", "failed"]
#: What made an attempt: the task-finished event, the retry schedule, a client's redelivery, a ping.
Trigger = Literal["event", "schedule", "redeliver", "ping"]


def _plain_text(value: str, field: str) -> str:
    """Text the database and the HMAC take: UTF-8, no control characters (NUL included)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{field} is not valid UTF-8 text") from error
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError(f"{field} must not contain control characters")
    return value


class WebhookCreate(BaseModel):
    """Body of POST /api/v1/webhooks (the seed's ``url`` and ``secret``, and two extras)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=MAX_URL_LENGTH, description="http(s) URL the deliveries are POSTed to (public addresses only)")
    secret: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="HMAC-SHA256 key: with it every delivery carries X-Webhook-Signature and webhook-signature. Stored, never returned.",
    )
    events: list[EventName] = Field(
        default_factory=lambda: list(EVENT_NAMES),
        min_length=1,
        max_length=len(EVENT_NAMES),
        description="Which task outcomes are delivered",
    )
    description: str = Field("", max_length=256)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parse_url(_plain_text(value, "url"))  # UrlRefused is a ValueError: a 422 naming the problem
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else _plain_text(value, "secret")

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        return _plain_text(value, "description")

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class WebhookOut(BaseModel):
    """A hook as its owner sees it: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    created_at: datetime
    events: list[str]
    description: str
    has_secret: bool  # whether deliveries are signed
    enabled: bool
    disabled_reason: str | None  # why it was disabled (every attempt failing for too long, or 410 Gone)
    failing_since: datetime | None  # its first failed attempt since the last success
    previous_secret_expires_at: datetime | None = None  # after a rotation: the old secret signs too until then


#: How long a rotated secret keeps signing by default (as Svix), and at most.
DEFAULT_OVERLAP_SECONDS = 24 * 3600
MAX_OVERLAP_SECONDS = 7 * 24 * 3600


class SecretRotation(BaseModel):
    """Body of POST /api/v1/webhooks/{webhook_id}/rotate-secret (may be empty)."""

    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="The new secret; left out: the server makes one and answers it this once.",
    )
    overlap_seconds: int = Field(
        DEFAULT_OVERLAP_SECONDS,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="How long the previous secret keeps signing too (webhook-signature carries both); 0: not at all",
    )

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else _plain_text(value, "secret")


class RotatedWebhook(WebhookOut):
    """The hook after a rotation; ``secret`` only when the server made it (shown this once)."""

    secret: str | None = None


class FailedRedelivery(BaseModel):
    """Body of POST /api/v1/webhooks/{webhook_id}/redeliver-failed."""

    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(
        description="Every failed delivery created at or after this time (ISO 8601; UTC when it names no zone) is queued again"
    )

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class RedeliveriesQueued(BaseModel):
    """What redeliver-failed queued: the retry schedule sends them within a minute or so."""

    queued: int
    since: datetime


class WebhookList(RootModel[list[WebhookOut]]):
    """GET /api/v1/webhooks: a JSON list, as in the seed."""


class AttemptOut(BaseModel):
    at: datetime
    trigger: Trigger
    status_code: int | None
    error: str | None
    duration_ms: int
    response_excerpt: str
    address: str | None  # the IP address connected to


class DeliveryOut(BaseModel):
    """One event for one hook: the ``webhook-id`` header is ``id``, the same on every attempt."""

    id: str
    webhook_id: str
    event: str  # task.done, task.error, ping
    event_id: str
    task_uid: str | None
    state: DeliveryState
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None  # pending: when it is (re)tried; sending: when it became due
    payload_bytes: int
    created_at: datetime
    updated_at: datetime


class DeliveryPage(BaseModel):
    total: int
    deliveries: list[DeliveryOut]


class DeliveryListQuery(ListQuery):
    """Query string of GET /api/v1/webhooks/{webhook_id}/deliveries: offset and limit, bounded as
    the task list's."""


class TaskFinishedDetail(BaseModel):
    """The ``detail`` of a ``Task Finished`` event (shared/platform/messaging.py)."""

    model_config = ConfigDict(extra="allow")

    uid: str = Field(min_length=1, max_length=32)
    owner: str
    status: Literal["done", "error"]
    tool: str
    result_files: list[str] = Field(default_factory=list)
    result_data: dict[str, Any] | None = None
    error: str | None = None
    request_id: str | None = None  # the job's id (the request that submitted the task)

    @property
    def event(self) -> str:
        return f"task.{self.status}"

    @property
    def event_id(self) -> str:
        """What makes two deliveries of this event the same: the task and its outcome."""
        return f"{self.uid}.{self.status}"


class TaskFinishedEvent(BaseModel):
    """The EventBridge event as the rule puts it on the task-events queue."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    detail_type: Literal["Task Finished"] = Field(alias="detail-type")
    source: Literal["visionfn"]
    detail: TaskFinishedDetail
