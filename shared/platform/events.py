"""Pydantic models of the events AWS delivers: an SQS batch whose bodies are S3 notifications."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field

from shared.platform.logs import REQUEST_ID_ATTRIBUTE, valid_request_id


class _Event(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)


# --- S3 notification (one model per JSON level) ---------------------------------------------


class S3Bucket(_Event):
    name: str
    arn: str | None = None


class S3Object(_Event):
    key: str
    size: int | None = None
    etag: str | None = Field(None, alias="eTag")
    sequencer: str | None = None

    @property
    def decoded_key(self) -> str:
        """S3 URL-encodes keys in notifications (a space arrives as ``+``)."""
        return unquote_plus(self.key)


class S3Message(_Event):
    bucket: S3Bucket
    object: S3Object


class S3EventRecord(_Event):
    event_name: str = Field(alias="eventName")
    event_time: datetime | None = Field(None, alias="eventTime")
    aws_region: str | None = Field(None, alias="awsRegion")
    s3: S3Message


class S3Notification(_Event):
    records: list[S3EventRecord] = Field(default_factory=list, alias="Records")


class ObjectRef(BaseModel):
    """An object that was created: what an upload handler works on."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None
    created_at: datetime | None = None  # when it was created (the notification's eventTime)


# --- SQS batch as delivered to a function ---------------------------------------------------


class SqsAttributes(_Event):
    approximate_receive_count: int = Field(1, alias="ApproximateReceiveCount")
    sent_timestamp: str | None = Field(None, alias="SentTimestamp")


class SqsRecord(_Event):
    message_id: str = Field(alias="messageId")
    receipt_handle: str = Field(alias="receiptHandle")
    body: str
    attributes: SqsAttributes = Field(default_factory=SqsAttributes)
    message_attributes: dict[str, Any] = Field(default_factory=dict, alias="messageAttributes")
    md5_of_body: str | None = Field(None, alias="md5OfBody")
    event_source: str = Field("aws:sqs", alias="eventSource")
    event_source_arn: str | None = Field(None, alias="eventSourceARN")
    aws_region: str | None = Field(None, alias="awsRegion")

    def json_body(self) -> Any:
        return json.loads(self.body)

    def request_id(self) -> str | None:
        """The id of the job this message belongs to (its ``request_id`` message attribute)."""
        attribute = self.message_attributes.get(REQUEST_ID_ATTRIBUTE)
        return valid_request_id(attribute.get("stringValue")) if isinstance(attribute, dict) else None

    def created_objects(self) -> list[ObjectRef]:
        """The objects an S3 notification body announces ([] for S3's test event)."""
        body = self.json_body()
        if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
            return []
        notification = S3Notification.model_validate(body)
        return [
            ObjectRef(
                bucket=record.s3.bucket.name,
                key=record.s3.object.decoded_key,
                etag=record.s3.object.etag,
                size=record.s3.object.size,
                created_at=record.event_time,
            )
            for record in notification.records
            if record.event_name.startswith("ObjectCreated")
        ]


class SqsEvent(_Event):
    records: list[SqsRecord] = Field(alias="Records")


class BatchItemFailure(BaseModel):
    item_identifier: str = Field(serialization_alias="itemIdentifier")


class BatchResponse(BaseModel):
    """The partial-batch response of a Lambda with ``ReportBatchItemFailures``."""

    batch_item_failures: list[BatchItemFailure] = Field(default_factory=list, serialization_alias="batchItemFailures")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)
