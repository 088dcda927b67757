"""Messages between functions: jobs on queues, task-finished events and state machine executions,
sent through an outbox.

A message is written to the ``outbox`` table in the same transaction as the state change it
announces, and sent right after the commit. A sender that dies in between leaves the row
unsent; the sweeper sends it later. So a task never waits for a job that was never sent, and a
finished task is always announced (at least once; once unless a sender dies mid-send).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from functools import cached_property
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.platform.db.engine import session_scope
from shared.platform.db.models import OutboxMessage, Task, utc_now
from shared.platform.events import SqsRecord
from shared.platform.logs import REQUEST_ID_ATTRIBUTE
from shared.platform.settings import Settings
from shared.platform.storage import aws_client

log = logging.getLogger("visionfn.messaging")

EVENT_SOURCE = "visionfn"
TASK_FINISHED = "Task Finished"
RELAY_BATCH = 100
#: The counts of a queue's messages: waiting, received and not yet deleted, sent with a delay.
DEPTH_ATTRIBUTES = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")


#: An EventBridge entry carries at most 256 KB: a larger result stays on the task row only (the
#: notifier reads the task's own result for the webhook; subscribers read the task).
EVENT_RESULT_DATA_BYTES = 128 * 1024


def task_finished_detail(task: Task) -> dict[str, Any]:
    """What subscribers (the notifier) get: the webhook payload's fields, the error, and the
    owner (whose webhooks are called). A result too large for an event is left out (null)."""
    result_data = task.result_data
    if result_data is not None and len(json.dumps(result_data, default=str)) > EVENT_RESULT_DATA_BYTES:
        result_data = None
    return {
        "uid": task.uid,
        "owner": task.owner,
        "status": task.status,
        "tool": task.tool,
        "result_files": task.result_files,
        "result_data": result_data,
        "error": (task.error or "")[:4096] or None,
        "request_id": task.request_id,
    }


class Outbox:
    """Writes messages inside a caller's transaction; sends them after it committed."""

    def __init__(self, sqs: Any, events: Any, event_bus: str, database_url: str | None = None, sfn: Any = None) -> None:
        self.sqs = sqs
        self.events = events
        self.sfn = sfn  # Step Functions, for callers that start executions
        self.event_bus = event_bus
        self.database_url = database_url

    @classmethod
    def of_stack(cls, settings: Settings, sqs: Any = None, sfn: Any = None) -> Outbox:
        """The stack's outbox (its queues, its event bus; Step Functions for those that start
        executions): the one place it is built."""
        return cls(sqs or aws_client("sqs", settings), aws_client("events", settings), settings.event_bus, sfn=sfn)

    # --- inside the caller's transaction ----------------------------------------------------
    @staticmethod
    def add_job(session: Session, task_uid: str, queue_url: str, request_id: str | None = None) -> None:
        """The task's job; its message carries ``request_id`` (a message attribute)."""
        session.add(
            OutboxMessage(task_uid=task_uid, kind="job", target=queue_url, body=json.dumps({"uid": task_uid}), request_id=request_id)
        )

    @staticmethod
    def add_execution(session: Session, task_uid: str, state_machine_arn: str, execution_input: dict[str, Any]) -> None:
        """Start an execution of ``state_machine_arn`` named after the task (so a second start of
        it is the same execution)."""
        session.add(OutboxMessage(task_uid=task_uid, kind="execution", target=state_machine_arn, body=json.dumps(execution_input)))

    def add_task_finished(self, session: Session, task: Task) -> None:
        """Announce a finished task (a chain's steps are announced by their chain)."""
        if task.parent_uid is not None:
            return
        body = json.dumps(task_finished_detail(task), default=str)
        session.add(OutboxMessage(task_uid=task.uid, kind="event", target=self.event_bus, body=body))

    @staticmethod
    def cancel_jobs(session: Session, task_uid: str) -> None:
        """Drop a task's unsent jobs (its submission failed before the job was due)."""
        for message in session.scalars(_unsent().where(OutboxMessage.task_uid == task_uid, OutboxMessage.kind == "job")):
            session.delete(message)

    # --- after the commit ----------------------------------------------------------------------
    def deliver(self, task_uid: str) -> None:
        """Send a task's unsent messages now; what fails stays for the sweeper (logged)."""
        with session_scope(self.database_url) as session:
            self._send_all(session, _unsent().where(OutboxMessage.task_uid == task_uid))

    def relay(self, older_than_seconds: float) -> int:
        """The sweeper: send what was committed over ``older_than_seconds`` ago and is still unsent."""
        cutoff = utc_now() - timedelta(seconds=older_than_seconds)
        with session_scope(self.database_url) as session:
            sent = self._send_all(session, _unsent().where(OutboxMessage.created_at < cutoff).limit(RELAY_BATCH))
        for message in sent:
            log.info("relayed %s %d of task %s (committed %s)", message.kind, message.id, message.task_uid, message.created_at.isoformat())
        return len(sent)

    def queue_is_empty(self, queue_url: str, queue_prefix: str) -> bool:
        """Whether a queue named ``queue_prefix...`` (the stack's) holds no message, dead letters
        included; another's, or one that cannot be read, is not counted (False)."""
        if not queue_url.rsplit("/", 1)[-1].startswith(queue_prefix):
            return False
        try:
            return not JobQueue(self.sqs, queue_url).holds_messages()
        except (BotoCoreError, ClientError) as error:
            log.warning("queue %s not counted: %s", queue_url, error)
            return False

    def _send_all(self, session: Session, query: Any) -> list[OutboxMessage]:
        """Send in order, marking each sent. What fails is kept for a later try, and so is what
        follows it for the same task (its event never overtakes its job). Rows another sender
        holds are skipped, so two senders never send the same row at once."""
        sent, held_back = [], set()
        for message in session.scalars(query.with_for_update(skip_locked=True)):
            if message.task_uid in held_back:
                continue
            try:
                self._send(message)
            except (BotoCoreError, ClientError) as error:
                log.warning("%s %d of task %s not sent, kept for the sweeper: %s", message.kind, message.id, message.task_uid, error)
                held_back.add(message.task_uid)
                continue
            sent.append(message)
        return sent

    def _send(self, message: OutboxMessage) -> None:
        if message.kind == "job":
            attributes = {REQUEST_ID_ATTRIBUTE: {"DataType": "String", "StringValue": message.request_id}} if message.request_id else {}
            self.sqs.send_message(QueueUrl=message.target, MessageBody=message.body, MessageAttributes=attributes)
        elif message.kind == "execution":
            try:
                self.sfn.start_execution(stateMachineArn=message.target, name=message.task_uid, input=message.body)
            except ClientError as error:  # started before, by a sender that died before marking it sent
                if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                    raise
        else:
            entry = {"Source": EVENT_SOURCE, "DetailType": TASK_FINISHED, "Detail": message.body, "EventBusName": message.target}
            response = self.events.put_events(Entries=[entry])
            if response.get("FailedEntryCount"):
                raise ClientError({"Error": {"Code": "FailedEntry", "Message": str(response["Entries"])}}, "PutEvents")
        message.sent_at = utc_now()
        log.debug("%s %d of task %s sent", message.kind, message.id, message.task_uid)


def _unsent():  # noqa: ANN202 (SQLAlchemy select)
    return select(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.id)


class JobQueue:
    """The SQS queue a function's jobs arrive on: visibility heartbeats, and its dead letters."""

    def __init__(self, client: Any, queue_url: str | None) -> None:
        self.client = client
        self.queue_url = queue_url
        self._urls: dict[str, str] = {}

    def keep_invisible(self, record: SqsRecord, seconds: int) -> None:
        """Heartbeat: the message stays invisible ``seconds`` from now (a live worker keeps it)."""
        self.client.change_message_visibility(
            QueueUrl=self._url_of(record.event_source_arn or ""),
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=seconds,
        )

    def holds_messages(self) -> bool:
        """Whether this queue or its dead-letter queue holds any message: waiting, in flight or
        delayed (SQS's approximate counts, which may lag by a minute)."""
        urls = [self.queue_url] if self.queue_url else []
        if self._dead_letter_arn:
            urls.append(self._url_of(self._dead_letter_arn))
        for url in urls:
            attributes = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=list(DEPTH_ATTRIBUTES))["Attributes"]
            if any(int(attributes.get(name, "0")) for name in DEPTH_ATTRIBUTES):
                return True
        return False

    def is_dead_letter(self, record: SqsRecord) -> bool:
        """Whether the record comes from this queue's dead-letter queue (its RedrivePolicy)."""
        return bool(record.event_source_arn) and record.event_source_arn == self._dead_letter_arn

    @cached_property
    def _dead_letter_arn(self) -> str | None:
        if not self.queue_url:
            return None
        attributes = self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"])
        policy = attributes.get("Attributes", {}).get("RedrivePolicy")
        return json.loads(policy)["deadLetterTargetArn"] if policy else None

    def _url_of(self, arn: str) -> str:
        """arn:aws:sqs:<region>:<account>:<name> -> the queue's URL (one lookup per queue)."""
        if arn not in self._urls:
            *_, account, name = arn.split(":")
            self._urls[arn] = self.client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return self._urls[arn]
