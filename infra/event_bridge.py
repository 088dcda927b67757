"""The local event source mapping: long-polls each function's queue and POSTs the SQS batch.

Like Lambda's SQS event source: a message is deleted only after the function answered 2xx
and did not list it in ``batchItemFailures``; anything else comes back after the visibility
timeout and, after ``maxReceiveCount`` deliveries, lands in the dead-letter queue.

``python -m infra.event_bridge BINDINGS_JSON``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from shared.http import EVENTS_PATH
from shared.settings import get_settings
from shared.storage import aws_client

log = logging.getLogger("visionfn.bridge")


@dataclass(frozen=True)
class QueueBinding:
    function: str
    queue_url: str
    queue_arn: str
    endpoint: str  # http://127.0.0.1:PORT
    batch_size: int
    timeout: int
    report_batch_item_failures: bool


def load_bindings(path: Path) -> list[QueueBinding]:
    return [QueueBinding(**item) for item in json.loads(path.read_text())]


def lambda_sqs_event(messages: list[dict[str, Any]], binding: QueueBinding, region: str) -> dict[str, Any]:
    """The event AWS would hand the function for these received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": binding.queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def succeeded_messages(
    messages: list[dict[str, Any]], status: int, body: bytes, report_batch_item_failures: bool
) -> list[dict[str, Any]]:
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


class QueuePoller(threading.Thread):
    def __init__(self, binding: QueueBinding, stop: threading.Event) -> None:
        super().__init__(name=f"bridge-{binding.function}", daemon=True)
        self.binding = binding
        self.stop_event = stop
        self.settings = get_settings()
        self.sqs = aws_client("sqs", self.settings)
        self.http = requests.Session()

    def run(self) -> None:
        log.info("polling %s for %s", self.binding.queue_url, self.binding.function)
        while not self.stop_event.is_set():
            try:
                self.poll_once()
            except Exception:  # keep polling; the messages come back after the timeout
                log.exception("bridge for %s failed a cycle", self.binding.function)
                self.stop_event.wait(1.0)

    def poll_once(self) -> int:
        binding = self.binding
        messages = self.sqs.receive_message(
            QueueUrl=binding.queue_url,
            MaxNumberOfMessages=min(binding.batch_size, 10),
            WaitTimeSeconds=self.settings.bridge_wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = lambda_sqs_event(messages, binding, self.settings.aws_region)
        try:
            response = self.http.post(binding.endpoint + EVENTS_PATH, json=event, timeout=binding.timeout)
            status, body = response.status_code, response.content
        except requests.RequestException as error:
            log.error("%s unreachable (%s); %d message(s) will be redelivered", binding.function, error, len(messages))
            return len(messages)
        done = succeeded_messages(messages, status, body, binding.report_batch_item_failures)
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=binding.queue_url,
                Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(done)],
            )
        log.info(
            "%s: %d delivered, %d done, %d to be redelivered (HTTP %d)",
            binding.function, len(messages), len(done), len(messages) - len(done), status,
        )
        return len(messages)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s bridge: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pollers = [QueuePoller(binding, stop) for binding in load_bindings(Path(sys.argv[1]))]
    for poller in pollers:
        poller.start()
    log.info("event bridge running with %d queue(s)", len(pollers))
    stop.wait()
    for poller in pollers:
        poller.join(timeout=get_settings().bridge_wait_seconds + 2)


if __name__ == "__main__":
    main()
