"""The local event sources: SQS event source mappings and schedules, as Lambda runs them.

Queues: each function's queues are long-polled and their messages POSTed to the function as
the SQS batch Lambda would hand it, with up to ``concurrency`` batches in flight per queue
(the event's ScalingConfig.MaximumConcurrency). A message is deleted only after the function
answered 2xx and did not list it in ``batchItemFailures``; anything else comes back after its
visibility timeout and, after ``maxReceiveCount`` deliveries, lands in the dead-letter queue.

Schedules: a ``Schedule`` event (``rate(...)``) POSTs EventBridge's "Scheduled Event".

Every invocation carries the Lambda context header with its deadline (the function's Timeout
from now), as the cloud entry (shared/platform/cloud_entry.py) passes it on Lambda.

``python -m infra.event_bridge BINDINGS_JSON``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import urllib3

from infra.processes import RESTART_POLL_SECONDS, port_accepts
from infra.settings import REUSE_IDLE_SECONDS, get_runner_settings
from shared.platform.access import PLATFORM_TOKEN_HEADER
from shared.platform.batch import LAMBDA_CONTEXT_HEADER
from shared.platform.http import EVENTS_PATH
from shared.platform.logs import REQUEST_ID_ATTRIBUTE, configure_logging, log_context
from shared.platform.storage import aws_client

log = logging.getLogger("visionfn.bridge")
#: The messages of an invocation whose process died come back after this long.
AFTER_A_DEATH_SECONDS = 1

#: Seconds the bridge waits for a function beyond its Timeout (the function stops its own work).
ANSWER_GRACE_SECONDS = 5


@dataclass(frozen=True)
class QueueBinding:
    function: str
    queue_url: str
    queue_arn: str
    endpoint: str  # http://127.0.0.1:PORT
    batch_size: int
    timeout: int
    report_batch_item_failures: bool
    concurrency: int = 1


@dataclass(frozen=True)
class ScheduleBinding:
    function: str
    name: str
    endpoint: str
    every_seconds: float
    timeout: int


@dataclass(frozen=True)
class Bindings:
    queues: list[QueueBinding] = field(default_factory=list)
    schedules: list[ScheduleBinding] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, path: Path) -> Bindings:
        data = json.loads(path.read_text())
        return cls([QueueBinding(**item) for item in data["queues"]], [ScheduleBinding(**item) for item in data["schedules"]])


def lambda_sqs_event(messages: list[dict[str, Any]], binding: QueueBinding, region: str) -> dict[str, Any]:
    """The event AWS would hand the function for these received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": lambda_message_attributes(message.get("MessageAttributes", {})),
                "md5OfBody": message.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": binding.queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS's ``MessageAttributes`` as Lambda spells them in an SQS event (camel case)."""
    return {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        for name, value in attributes.items()
    }


def _has_request_id(message: dict[str, Any]) -> bool:
    return "StringValue" in message.get("MessageAttributes", {}).get(REQUEST_ID_ATTRIBUTE, {})


def scheduled_event(binding: ScheduleBinding, region: str) -> dict[str, Any]:
    """EventBridge's "Scheduled Event", as a Schedule event source delivers it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"local:schedule/{binding.function}/{binding.name}"],
        "detail": {},
    }


def lambda_context(function: str, timeout: int) -> str:
    """The Lambda context header: the invocation's deadline in epoch milliseconds."""
    return json.dumps({"request_id": str(uuid.uuid4()), "deadline": int((time.time() + timeout) * 1000), "invoked_function_arn": function})


def succeeded_messages(messages: list[dict[str, Any]], status: int, body: bytes, report_batch_item_failures: bool) -> list[dict[str, Any]]:
    """Which messages to delete, given the function's answer (AWS's rules)."""
    if not 200 <= status < 300:
        return []
    if not report_batch_item_failures:
        return messages
    try:
        failures = json.loads(body or b"{}").get("batchItemFailures") or []
        failed = {item["itemIdentifier"] for item in failures}
    except (ValueError, AttributeError, TypeError, KeyError):
        return []  # an unreadable partial-batch response fails the whole batch
    return [message for message in messages if message["MessageId"] not in failed]


def invoke(http: requests.Session, endpoint: str, function: str, timeout: int, event: dict[str, Any]) -> requests.Response:
    return http.post(
        endpoint + EVENTS_PATH,
        json=event,
        headers={
            LAMBDA_CONTEXT_HEADER: lambda_context(function, timeout),
            PLATFORM_TOKEN_HEADER: get_runner_settings().platform_token or "",
        },
        timeout=timeout + ANSWER_GRACE_SECONDS,
    )


class QueuePoller(threading.Thread):
    """One queue's event source: receives while a delivery slot is free, delivers concurrently."""

    def __init__(self, binding: QueueBinding, stop: threading.Event) -> None:
        super().__init__(name=f"bridge-{binding.function}", daemon=True)
        self.binding = binding
        self.stop_event = stop
        self.settings = get_runner_settings()
        self.sqs = aws_client("sqs", self.settings)
        self.slots = threading.BoundedSemaphore(binding.concurrency)
        self.deliveries = ThreadPoolExecutor(binding.concurrency, thread_name_prefix=f"deliver-{binding.function}")
        self.local = threading.local()
        self.port = int(binding.endpoint.rsplit(":", 1)[1])

    def run(self) -> None:
        log.info("polling %s for %s (%d at once)", self.binding.queue_url, self.binding.function, self.binding.concurrency)
        while not self.stop_event.is_set():
            # receive only while the function answers: one that is being restarted (a cold start,
            # not a failure) must not use up its messages' deliveries
            if not port_accepts(self.port):
                self.stop_event.wait(0.1)
                continue
            if not self.slots.acquire(timeout=1.0):
                continue
            try:
                messages = self.receive()
            except Exception:  # keep polling; LocalStack may be restarting
                log.exception("bridge for %s failed to receive", self.binding.function)
                messages = []
                self.stop_event.wait(1.0)
            if messages:
                self.deliveries.submit(self.deliver, messages)
            else:
                self.slots.release()
        self.deliveries.shutdown(wait=False, cancel_futures=True)

    def receive(self) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=self.binding.queue_url,
            MaxNumberOfMessages=min(self.binding.batch_size, 10),
            WaitTimeSeconds=self.settings.bridge_wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def deliver(self, messages: list[dict[str, Any]]) -> None:
        with log_context(
            request_ids=[*{m["MessageAttributes"][REQUEST_ID_ATTRIBUTE]["StringValue"] for m in messages if _has_request_id(m)}] or None
        ):
            self._deliver(messages)

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        binding = self.binding
        log.debug("%s: %d message(s) received", binding.function, len(messages))
        try:
            http = self.session()
            event = lambda_sqs_event(messages, binding, self.settings.aws_region)
            try:
                response = self.invoke_through_restarts(http, event)
                status, body = response.status_code, response.content
            except requests.ConnectionError as error:  # the invocation's connection dropped: its process died
                log.error(
                    "%s died during the invocation (%s); %d message(s) back in %d s",
                    binding.function,
                    error,
                    len(messages),
                    AFTER_A_DEATH_SECONDS,
                )
                self.make_visible(messages)
                return
            except requests.RequestException as error:
                log.error("%s did not answer (%s); %d message(s) will be redelivered", binding.function, error, len(messages))
                return
            done = succeeded_messages(messages, status, body, binding.report_batch_item_failures)
            if done:
                self.sqs.delete_message_batch(
                    QueueUrl=binding.queue_url,
                    Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(done)],
                )
            log.info(
                "%s: %d delivered, %d done, %d to be redelivered (HTTP %d)",
                binding.function,
                len(messages),
                len(done),
                len(messages) - len(done),
                status,
            )
        except Exception:
            log.exception("delivery to %s failed; the messages will be redelivered", binding.function)
        finally:
            self.slots.release()

    def session(self) -> requests.Session:
        """This delivery thread's session; its connection is dropped once idle for
        ``REUSE_IDLE_SECONDS``, before the function's server may close it under a request."""
        now, local = time.monotonic(), self.local.__dict__
        http = local.setdefault("http", requests.Session())
        if now - local.get("used", now) >= REUSE_IDLE_SECONDS:
            http.close()  # its pool: the next request opens a new connection
        local["used"] = now
        return http

    def invoke_through_restarts(self, http: requests.Session, event: dict[str, Any]) -> requests.Response:
        """Invoke the function; while it refuses connections (it is being restarted) wait for it,
        within its timeout, as an invocation waits for a cold start."""
        binding, deadline = self.binding, time.monotonic() + self.binding.timeout
        while True:
            try:
                return invoke(http, binding.endpoint, binding.function, binding.timeout, event)
            except requests.ConnectionError as error:
                if not refused(error) or time.monotonic() > deadline or self.stop_event.is_set():
                    raise
                time.sleep(RESTART_POLL_SECONDS)

    def make_visible(self, messages: list[dict[str, Any]]) -> None:
        """The messages of an invocation whose worker died: deliverable again in a second (the time
        a function takes to come back), not after their visibility timeout; the next delivery takes
        over the dead worker's lease (leases.py). Not at once: a process that is still going down
        could take them and die with them again, using up their deliveries."""
        try:
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.binding.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": AFTER_A_DEATH_SECONDS}
                    for index, m in enumerate(messages)
                ],
            )
        except Exception as error:  # they come back after their visibility timeout all the same
            log.warning("could not make %d message(s) visible again: %s", len(messages), error)


def refused(error: requests.ConnectionError) -> bool:
    """Whether the connection was refused (nothing was sent: the function is not listening)."""
    cause = error.args[0] if error.args else None
    reason = getattr(cause, "reason", cause)
    return isinstance(reason, urllib3.exceptions.NewConnectionError) or isinstance(reason, ConnectionRefusedError)


class Scheduler(threading.Thread):
    """One Schedule event: invokes the function every ``every_seconds`` (never two at once)."""

    def __init__(self, binding: ScheduleBinding, stop: threading.Event) -> None:
        super().__init__(name=f"schedule-{binding.function}", daemon=True)
        self.binding = binding
        self.stop_event = stop
        self.http = requests.Session()

    def run(self) -> None:
        binding = self.binding
        log.info("scheduling %s (%s) every %.0f s", binding.function, binding.name, binding.every_seconds)
        while not self.stop_event.wait(binding.every_seconds):
            try:
                event = scheduled_event(binding, get_runner_settings().aws_region)
                response = invoke(self.http, binding.endpoint, binding.function, binding.timeout, event)
                if response.status_code >= 300:
                    log.error("%s (%s) answered HTTP %d", binding.function, binding.name, response.status_code)
            except requests.RequestException as error:
                log.error("%s (%s) did not answer: %s", binding.function, binding.name, error)


def main() -> None:
    configure_logging("bridge")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    bindings = Bindings.load(Path(sys.argv[1]))
    threads: list[threading.Thread] = [QueuePoller(binding, stop) for binding in bindings.queues]
    threads += [Scheduler(binding, stop) for binding in bindings.schedules]
    for thread in threads:
        thread.start()
    log.info("event bridge running: %d queue(s), %d schedule(s)", len(bindings.queues), len(bindings.schedules))
    stop.wait()
    for thread in threads:
        thread.join(timeout=get_runner_settings().bridge_wait_seconds + 2)


if __name__ == "__main__":
    main()
