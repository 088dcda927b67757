"""SQS batch processing with partial-batch failures, as a Lambda event source mapping expects.

Each record handler says what became of its record with an explicit ``Outcome``: handled,
dropped (it can never succeed: logged, deleted, not retried) or to be retried (reported in
``batchItemFailures``; SQS redelivers it and moves it to the dead-letter queue after
``maxReceiveCount`` deliveries). A handler that raises is retried: a bug or an outage may pass.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from shared.platform.access import RequestHeaders
from shared.platform.errors import Busy, RequestValidationFailed, UnreadableMessage, VisionFnError
from shared.platform.events import BatchItemFailure, BatchResponse, ObjectRef, SqsEvent, SqsRecord
from shared.platform.logs import log_context

log = logging.getLogger("visionfn.batch")

#: Header in which the cloud entry (and the local event bridge) passes the invocation
#: context: JSON with ``deadline``, the epoch milliseconds at which the function times out.
LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"


class Outcome(enum.Enum):
    HANDLED = "handled"  # done (or nothing to do): the message is deleted
    DROPPED = "dropped"  # can never succeed (bad input): logged and deleted, not retried
    RETRY = "retry"  # may pass on a later delivery: reported as a batch item failure
    LEFT = "left"  # another delivery of it holds the work now: left to that one (not deleted), as a batch item failure


@dataclass(frozen=True)
class Invocation:
    """When this invocation must be over: the function's ``Timeout`` from its start."""

    deadline: float  # time.monotonic() value
    timeout_seconds: int

    @classmethod
    def from_headers(cls, headers: RequestHeaders, default_timeout: int) -> Invocation:
        """The deadline the platform set (Lambda context header), else ``default_timeout`` from now."""
        now_monotonic, now_epoch = time.monotonic(), time.time()
        try:
            context = json.loads(headers.get(LAMBDA_CONTEXT_HEADER) or "{}")
            deadline_epoch = float(context["deadline"]) / 1000
            timeout = round(deadline_epoch - now_epoch)
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls(now_monotonic + default_timeout, default_timeout)
        return cls(now_monotonic + (deadline_epoch - now_epoch), timeout)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


RecordHandler = Callable[[SqsRecord, Invocation], Outcome]
Message = TypeVar("Message")


def read_message(record: SqsRecord, schema: TypeAdapter[Message], expected: str) -> Message:
    """The record's body as ``schema``; raises UnreadableMessage (the record is dropped) when it
    is not ``expected``."""
    try:
        return schema.validate_json(record.body)
    except ValidationError:
        raise UnreadableMessage(f"not {expected}: {record.body[:200]!r}") from None


ObjectHandler = Callable[[ObjectRef, int], Outcome]


def bring_back_in(retry_after: RetryAfter, record: SqsRecord, seconds: int) -> None:
    """Bring a record back in ``seconds`` (a busy one, or one given back for a retry); if SQS will
    not (an expired receipt handle, a missing permission), it comes back after its visibility
    timeout all the same: never a failed batch."""
    try:
        retry_after(record, seconds)
    except Exception as error:  # an optimisation that failed: logged, never the batch
        log.warning(
            "message %s: could not bring it back in %d s (%s); it returns after its visibility timeout", record.message_id, seconds, error
        )


#: Makes a record's message visible again in this many seconds (SQS ChangeMessageVisibility).
RetryAfter = Callable[[SqsRecord, int], None]


def process_sqs_batch(
    payload: Any, handle_record: RecordHandler, invocation: Invocation, retry_after: RetryAfter | None = None
) -> BatchResponse:
    """Handle each record; report those whose outcome is RETRY (or whose handler raised). A record
    whose work is Busy (another worker's lease) comes back when that lease lapses: the one answer
    to a busy claim, whichever handler met it."""
    try:
        event = SqsEvent.model_validate(payload)
    except ValidationError as error:
        raise RequestValidationFailed.from_pydantic(error, "body") from error
    failures: list[BatchItemFailure] = []
    for record in event.records:
        with log_context(request_id=record.request_id(), message_id=record.message_id):
            outcome = _handle(record, handle_record, invocation, retry_after)
        if outcome in (Outcome.RETRY, Outcome.LEFT):
            failures.append(BatchItemFailure(item_identifier=record.message_id))
    return BatchResponse(batch_item_failures=failures)


def _handle(record: SqsRecord, handle_record: RecordHandler, invocation: Invocation, retry_after: RetryAfter | None) -> Outcome:
    try:
        return handle_record(record, invocation)
    except UnreadableMessage as error:
        log.warning("dropped message %s: %s", record.message_id, error.detail)
        return Outcome.DROPPED
    except Busy as busy:
        log.info("message %s: %s; back in %d s", record.message_id, busy.detail, busy.retry_after_seconds)
        if retry_after is not None:
            bring_back_in(retry_after, record, busy.retry_after_seconds)
        return Outcome.RETRY
    except Exception as error:  # a bug or an outage: another delivery may pass
        detail = error.detail if isinstance(error, VisionFnError) else repr(error)
        log.exception("message %s failed, will be retried: %s", record.message_id, detail)
        return Outcome.RETRY


def for_each_created_object(handle_object: ObjectHandler) -> RecordHandler:
    """Adapt a per-object upload handler to SQS records carrying S3 notifications."""

    def handle_record(record: SqsRecord, _invocation: Invocation) -> Outcome:
        try:
            objects = record.created_objects()
        except (ValueError, ValidationError) as error:
            raise UnreadableMessage(f"its body is not an S3 notification: {error}") from None
        outcomes = [handle_object(obj, record.attributes.approximate_receive_count) for obj in objects]
        return Outcome.RETRY if Outcome.RETRY in outcomes else Outcome.HANDLED

    return handle_record
