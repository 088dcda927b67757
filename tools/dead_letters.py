"""Dead letters: what sits in each dead-letter queue of the stack, and moving it back.

``python -m tools.dead_letters [list]`` (``make dead-letters``) lists every message of every DLQ:
which task it is about (a job's ``{"uid"}``, a chain step's task, a task event's task) or which
objects (an S3 notification's keys), whose task it is and its last error (the task's row, from
``DATABASE_URL``), how often SQS delivered it (``ApproximateReceiveCount``: the deliveries that
failed, and each listing's own receive too) and when it was first sent.

``python -m tools.dead_letters redrive MESSAGE_ID ...`` (``make redrive IDS="..."``) moves those
messages back to the queue they came from; ``redrive --all`` (``make redrive ALL=1``) moves every
one, with SQS's own move task (StartMessageMoveTask) where the endpoint has it. A chosen message
(or every one, without a move task) is received, sent again to its source queue (a new message
id) and deleted from the DLQ.

The stack's queues are the running local platform's (``<run dir>/state.json``, as `make status`
reads it: its LocalStack, its queues) unless ``--queue-prefix visionfn-prod-`` names them: every
queue of that prefix with a RedrivePolicy, on the endpoint and credentials of the environment.
``--queue task-events-dlq`` keeps to one DLQ.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from infra.runner import state_path
from infra.settings import RunnerSettings, get_runner_settings
from infra.stack import LOCAL_CREDENTIALS
from shared.platform.errors import TaskNotFound
from shared.platform.events import S3Notification
from shared.platform.storage import aws_client
from shared.platform.tasks import TaskRepository, step_uid

#: A message is held invisible this long while it is listed or moved (then released at once).
HOLD_SECONDS = 30
#: At most this many messages of one DLQ are listed (or searched for the ids to move).
DEFAULT_MAX_MESSAGES = 1000
#: How long a move task may run before we stop waiting for it (it goes on).
MOVE_TASK_WAIT_SECONDS = 60
MOVE_TASK_ENDED = {"COMPLETED", "FAILED", "CANCELLED"}


class DeadLetterError(RuntimeError):
    """What this command cannot do, said plainly (exit status 2)."""


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str
    url: str
    arn: str
    sources: dict[str, str]  # the queues whose RedrivePolicy names it: ARN -> URL

    def source_of(self, message: dict[str, Any]) -> str:
        """The URL of the queue ``message`` came from: SQS names it on the message
        (DeadLetterQueueSourceArn); else this DLQ's one source queue."""
        named = message.get("Attributes", {}).get("DeadLetterQueueSourceArn")
        if named in self.sources:
            return self.sources[named]
        if len(self.sources) == 1:
            return next(iter(self.sources.values()))
        raise DeadLetterError(
            f"{self.name} is the DLQ of {len(self.sources)} queues and message {message['MessageId']} does not say which it came from"
        )


@dataclass(frozen=True)
class Subject:
    """What a message is about, read from its body alone."""

    kind: str  # task job | chain step | task event | S3 notification | S3 test event | unreadable
    uid: str | None = None  # the task (a chain step's own task)
    keys: tuple[str, ...] = ()  # an S3 notification's objects
    owner: str | None = None  # a task event names its owner itself


def subject_of(body: str) -> Subject:
    """A job (``{"uid"}``, also the chain queue's end of a chain), a chain step (``{chain, step,
    task_token}``), a ``Task Finished`` event, an S3 notification; anything else is unreadable."""
    try:
        message = json.loads(body)
    except ValueError:
        return Subject("unreadable")
    if not isinstance(message, dict):
        return Subject("unreadable")
    if isinstance(message.get("uid"), str):
        return Subject("task job", uid=message["uid"])
    if isinstance(message.get("chain"), str) and isinstance(message.get("step"), int):
        return Subject("chain step", uid=step_uid(message["chain"], message["step"]))
    detail = message.get("detail")
    if message.get("detail-type") == "Task Finished" and isinstance(detail, dict) and isinstance(detail.get("uid"), str):
        owner = detail.get("owner")
        return Subject("task event", uid=detail["uid"], owner=owner if isinstance(owner, str) else None)
    if message.get("Event") == "s3:TestEvent":
        return Subject("S3 test event")
    if "Records" in message:
        try:
            notification = S3Notification.model_validate(message)
        except ValidationError:
            return Subject("unreadable")
        return Subject("S3 notification", keys=tuple(record.s3.object.decoded_key for record in notification.records))
    return Subject("unreadable")


@dataclass
class DeadLetter:
    """One message of a DLQ, and what the database knows of its task."""

    queue: str
    message_id: str
    received: int  # ApproximateReceiveCount
    sent_at: str | None  # when it was first sent (to its source queue), UTC
    kind: str
    uid: str | None = None
    keys: list[str] = field(default_factory=list)
    owner: str | None = None
    status: str | None = None  # the task's, when it is known
    error: str | None = None  # the task's last error

    @property
    def about(self) -> str:
        if self.uid:
            return f"{self.kind} {self.uid}"
        if self.keys:
            return f"{self.kind} {', '.join(self.keys)}"
        return self.kind


def _sent_at(message: dict[str, Any]) -> str | None:
    stamp = message.get("Attributes", {}).get("SentTimestamp")
    return datetime.fromtimestamp(int(stamp) / 1000, UTC).isoformat(timespec="seconds") if stamp else None


class DeadLetters:
    """The stack's DLQs (``queue_urls``: its queues, sources and DLQs alike) and its tasks."""

    def __init__(self, sqs: Any, queue_urls: Iterable[str], tasks: TaskRepository | None, max_messages: int = DEFAULT_MAX_MESSAGES) -> None:
        self.sqs = sqs
        self.tasks = tasks
        self.max_messages = max_messages
        self.queues = self._dead_letter_queues(queue_urls)
        self.warnings: list[str] = []

    def _dead_letter_queues(self, queue_urls: Iterable[str]) -> list[DeadLetterQueue]:
        sources: dict[str, dict[str, str]] = {}  # DLQ ARN -> its source queues (ARN -> URL)
        for url in dict.fromkeys(queue_urls):
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])["Attributes"]
            if policy := attributes.get("RedrivePolicy"):
                sources.setdefault(json.loads(policy)["deadLetterTargetArn"], {})[attributes["QueueArn"]] = url
        queues = []
        for arn, of_queue in sorted(sources.items()):
            *_, account, name = arn.split(":")
            url = self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            queues.append(DeadLetterQueue(name, url, arn, of_queue))
        return queues

    def only(self, name: str | None) -> list[DeadLetterQueue]:
        """Every DLQ, or the one ``name`` names (its whole name or its end: ``task-events-dlq``)."""
        if name is None:
            return self.queues
        chosen = [queue for queue in self.queues if queue.name == name or queue.name.endswith(f"-{name}")]
        if not chosen:
            raise DeadLetterError(f"no dead-letter queue {name}; there are: {', '.join(q.name for q in self.queues) or 'none'}")
        return chosen

    # --- listing --------------------------------------------------------------------------------
    def messages(self, queues: Sequence[DeadLetterQueue]) -> list[DeadLetter]:
        """Every message of ``queues``, described; each left where it was (visible again at once)."""
        letters = []
        for queue in queues:
            messages = self._receive_all(queue)
            try:
                letters += [self._described(queue, message) for message in messages]
            finally:
                self._release(queue, messages)
        return letters

    def _described(self, queue: DeadLetterQueue, message: dict[str, Any]) -> DeadLetter:
        subject = subject_of(message["Body"])
        letter = DeadLetter(
            queue=queue.name,
            message_id=message["MessageId"],
            kind=subject.kind,
            received=int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
            sent_at=_sent_at(message),
            uid=subject.uid,
            keys=list(subject.keys),
            owner=subject.owner,
        )
        if subject.uid and self.tasks is not None:
            try:
                task = self.tasks.get(subject.uid)
            except TaskNotFound:
                letter.status = "no such task"
            except SQLAlchemyError as error:
                self._warn(f"tasks are not looked up: the database did not answer ({type(error).__name__})")
                self.tasks = None
            else:
                letter.owner, letter.status, letter.error = task.owner, task.status, task.error
        return letter

    # --- moving back ----------------------------------------------------------------------------
    def redrive(self, queues: Sequence[DeadLetterQueue], message_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Move ``message_ids`` back to their source queues: what was moved (``<id> -> <queue>``)
        and the ids found in none of ``queues``."""
        wanted, moved = set(message_ids), []
        for queue in queues:
            if not wanted:
                break
            messages = self._receive_all(queue)
            chosen = [message for message in messages if message["MessageId"] in wanted]
            try:
                for message in chosen:
                    moved.append(self._resend(queue, message))
                    wanted.discard(message["MessageId"])
            finally:
                self._release(queue, [message for message in messages if message not in chosen])
        return moved, [message_id for message_id in message_ids if message_id in wanted]

    def redrive_all(self, queue: DeadLetterQueue) -> str:
        """Every message of ``queue`` back to its source: SQS's move task, else one by one."""
        try:
            return self._move_task(queue)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("InvalidParameterValue", "ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue"):
                raise DeadLetterError(f"{queue.name}: {error}") from error
            self._warn(f"{queue.name}: no move task here ({code or error}); the messages are moved one by one")
        messages = self._receive_all(queue)
        moved = [self._resend(queue, message) for message in messages]
        return f"{queue.name}: {len(moved)} message(s) moved back one by one"

    def _warn(self, warning: str) -> None:
        if warning not in self.warnings:
            self.warnings.append(warning)

    def _move_task(self, queue: DeadLetterQueue) -> str:
        destination = {"DestinationArn": next(iter(queue.sources))} if len(queue.sources) == 1 else {}
        self.sqs.start_message_move_task(SourceArn=queue.arn, **destination)
        deadline = time.monotonic() + MOVE_TASK_WAIT_SECONDS
        while True:
            tasks = self.sqs.list_message_move_tasks(SourceArn=queue.arn, MaxResults=1).get("Results", [])
            task = tasks[0] if tasks else {}
            if task.get("Status") in MOVE_TASK_ENDED or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        moved = task.get("ApproximateNumberOfMessagesMoved", "?")
        status = task.get("Status", "unknown")
        failure = f" ({task['FailureReason']})" if task.get("FailureReason") else ""
        return f"{queue.name}: move task {status.lower()}{failure}, {moved} message(s) moved back"

    def _resend(self, queue: DeadLetterQueue, message: dict[str, Any]) -> str:
        source = queue.source_of(message)
        extra: dict[str, Any] = {}
        attributes = {
            name: {key: value for key, value in attribute.items() if key in ("DataType", "StringValue", "BinaryValue")}
            for name, attribute in message.get("MessageAttributes", {}).items()
        }
        if attributes:
            extra["MessageAttributes"] = attributes
        if group := message.get("Attributes", {}).get("MessageGroupId"):  # a FIFO queue's
            extra.update(MessageGroupId=group, MessageDeduplicationId=message["MessageId"])
        sent = self.sqs.send_message(QueueUrl=source, MessageBody=message["Body"], **extra)
        self.sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
        return f"{message['MessageId']} -> {source.rsplit('/', 1)[-1]} (now {sent['MessageId']})"

    # --- receiving without consuming ------------------------------------------------------------
    def _receive_all(self, queue: DeadLetterQueue) -> list[dict[str, Any]]:
        """Every message of ``queue`` (up to ``max_messages``), each held invisible while we look."""
        messages: dict[str, dict[str, Any]] = {}
        wait = 0
        while len(messages) < self.max_messages:
            batch = self.sqs.receive_message(
                QueueUrl=queue.url,
                MaxNumberOfMessages=min(10, self.max_messages - len(messages)),
                VisibilityTimeout=HOLD_SECONDS,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                if wait:  # asked once more with a wait (a short poll may miss some): none left
                    break
                wait = 1
                continue
            for message in batch:
                messages.setdefault(message["MessageId"], message)
        return list(messages.values())

    def _release(self, queue: DeadLetterQueue, messages: Sequence[dict[str, Any]]) -> None:
        """Visible again at once (a listing changes nothing but the receive count)."""
        for start in range(0, len(messages), 10):
            self.sqs.change_message_visibility_batch(
                QueueUrl=queue.url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                    for index, message in enumerate(messages[start : start + 10])
                ],
            )


# --- the stack ------------------------------------------------------------------------------------


def stack_queues(settings: RunnerSettings, queue_prefix: str | None) -> tuple[Any, list[str]]:
    """An SQS client and every queue of the stack: the running local platform's, or those named
    ``queue_prefix*`` on the environment's endpoint."""
    if queue_prefix:
        sqs = aws_client("sqs", settings)
        pages = sqs.get_paginator("list_queues").paginate(QueueNamePrefix=queue_prefix)
        return sqs, [url for page in pages for url in page.get("QueueUrls", [])]
    path = state_path(settings)
    if not path.is_file():
        raise DeadLetterError(
            f"no running platform ({path} is missing): start it (`make up`), or name the stack's "
            "queues with --queue-prefix (with AWS credentials, and AWS_ENDPOINT_URL for another endpoint)"
        )
    state = json.loads(path.read_text())
    os.environ.update(LOCAL_CREDENTIALS)  # LocalStack's throwaway ones, as the runner uses
    sqs = aws_client("sqs", settings.model_copy(update={"aws_endpoint_url": state["localstack_url"]}))
    return sqs, [url for name, url in state["outputs"].items() if name.endswith(("QueueUrl", "DLQUrl"))]


def _print_letters(letters: list[DeadLetter], queues: Sequence[DeadLetterQueue]) -> None:
    for queue in queues:
        mine = [letter for letter in letters if letter.queue == queue.name]
        sources = ", ".join(url.rsplit("/", 1)[-1] for url in queue.sources.values())
        print(f"{queue.name} ({len(mine)} message(s); redriven to {sources})")
        for letter in mine:
            task = f"  owner {letter.owner or '-'}  status {letter.status or '-'}" if letter.uid or letter.owner else ""
            print(f"  {letter.message_id}  received {letter.received}  sent {letter.sent_at or '-'}  {letter.about}{task}")
            if letter.error:
                print(f"      last error: {letter.error}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dead_letters", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--queue-prefix", help="the stack's queues by name prefix (e.g. visionfn-prod-); default: the running local platform's"
    )
    parser.add_argument("--queue", help="one dead-letter queue (its name, or its end: task-events-dlq)")
    parser.add_argument("--max", type=int, default=DEFAULT_MAX_MESSAGES, help="messages read per queue at most")
    commands = parser.add_subparsers(dest="command")
    listing = commands.add_parser("list", help="every message of the DLQs (the default)")
    listing.add_argument("--json", action="store_true", help="one JSON object per message, one per line")
    redrive = commands.add_parser("redrive", help="move messages back to their source queues")
    redrive.add_argument("message_ids", nargs="*", metavar="MESSAGE_ID")
    redrive.add_argument("--all", action="store_true", help="every message (of --queue, or of every DLQ)")
    args = parser.parse_args(argv)
    settings = get_runner_settings()
    try:
        sqs, urls = stack_queues(settings, args.queue_prefix)
        dead_letters = DeadLetters(sqs, urls, TaskRepository(settings.database_url), args.max)
        queues = dead_letters.only(args.queue)
        if args.command == "redrive":
            if args.all == bool(args.message_ids):
                parser.error("redrive takes message ids or --all (not both)")
            if args.all:
                for queue in queues:
                    print(dead_letters.redrive_all(queue))
                missing: list[str] = []
            else:
                moved, missing = dead_letters.redrive(queues, args.message_ids)
                print("\n".join(f"moved {line}" for line in moved) or "nothing moved")
                for message_id in missing:
                    print(f"no message {message_id} in {', '.join(q.name for q in queues)}", file=sys.stderr)
        else:
            found = dead_letters.messages(queues)
            if getattr(args, "json", False):
                for letter in found:
                    print(json.dumps(asdict(letter)))
            else:
                _print_letters(found, queues)
            missing = []
    except (DeadLetterError, ClientError, BotoCoreError) as error:
        print(f"dead letters: {error}", file=sys.stderr)
        return 2
    for warning in dead_letters.warnings:
        print(f"dead letters: {warning}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
