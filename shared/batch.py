"""SQS batch processing with partial-batch failures, as a Lambda event source mapping expects."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from shared.errors import BadRequest, RequestValidationFailed, VisionFnError
from shared.events import BatchItemFailure, BatchResponse, ObjectRef, SqsEvent, SqsRecord

log = logging.getLogger("visionfn.batch")

RecordHandler = Callable[[SqsRecord], None]
ObjectHandler = Callable[[ObjectRef, int], None]


def process_sqs_batch(payload: Any, handle_record: RecordHandler) -> BatchResponse:
    """Handle each record; report those that failed for a reason that may pass on a retry.

    A client error (bad input: not an image, unknown task, ...) will fail the same way on
    every delivery, so it is logged and the message is dropped instead of retried forever.
    """
    try:
        event = SqsEvent.model_validate(payload)
    except ValidationError as error:
        raise RequestValidationFailed.from_pydantic(error, "body") from error
    failures: list[BatchItemFailure] = []
    for record in event.records:
        try:
            handle_record(record)
        except VisionFnError as error:
            if error.is_client_error:
                log.warning("skipped message %s (not retried): %s", record.message_id, error.detail)
                continue
            log.error("message %s failed, will be retried: %s", record.message_id, error.detail)
            failures.append(BatchItemFailure(item_identifier=record.message_id))
        except Exception:
            log.exception("message %s failed, will be retried", record.message_id)
            failures.append(BatchItemFailure(item_identifier=record.message_id))
    return BatchResponse(batch_item_failures=failures)


def for_each_created_object(handle_object: ObjectHandler) -> RecordHandler:
    """Adapt a per-object upload handler to SQS records carrying S3 notifications."""

    def handle_record(record: SqsRecord) -> None:
        try:
            objects = record.created_objects()
        except (ValueError, ValidationError) as error:
            raise BadRequest(f"Message body is not an S3 notification: {error}") from error
        for obj in objects:
            try:
                handle_object(obj, record.attributes.approximate_receive_count)
            except VisionFnError as error:
                raise error.about(obj.key) from error

    return handle_record
