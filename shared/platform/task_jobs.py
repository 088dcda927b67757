"""Asynchronous tasks on both sides of their job queue, for every domain (matching, face video).

Submission: the task's row (with its job, in one transaction: the outbox) comes first, then its
inputs are stored, then its job is sent (``store_and_dispatch``). Work: ``TaskWorker.take``
claims the job's task with a lease exactly once, runs the domain's work, and finishes the task
with a write fenced by that lease: ``done``; ``error`` for bad input, a timeout or the last
delivery (never retried); otherwise released for the redelivery. A job whose task another
worker holds comes back when that lease lapses; the dead-letter queue's jobs end their task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.platform.batch import Invocation, Outcome, bring_back_in
from shared.platform.errors import Busy, LeaseLost, ServiceUnavailable, TimedOut, VisionFnError
from shared.platform.events import SqsRecord
from shared.platform.leases import Claim, Lease
from shared.platform.logs import log_context
from shared.platform.messaging import JobQueue
from shared.platform.metrics import emit_metrics
from shared.platform.settings import Settings
from shared.platform.storage import ObjectStore
from shared.platform.tasks import TaskOut, TaskRepository

log = logging.getLogger("visionfn.tasks")

DEAD_LETTER_ERROR = "Gave up after {count} deliveries: the worker stopped each time without finishing (crash, timeout or out of memory)"
#: A job whose attempt failed (its work process crashed, say) and was given back comes back this soon.
RETRY_DELAY_SECONDS = 1
#: A heartbeat hides the job's message for this many leases: a worker starved of the CPU for
#: longer than its lease (its heartbeat late) keeps its job, since no delivery comes back to take
#: it over, and its next renewal succeeds (nobody claimed the task). A dead worker's job comes back
#: at once all the same (its process exit or its dropped invocation is seen), a frozen one's later.
MESSAGE_HOLD_LEASES = 2
#: Seconds kept, before the function's deadline, to record a timed-out task.
TIMEOUT_MARGIN_SECONDS = 1.0

#: The domain's work on a claimed task: ``(result_data, result_files)``. It raises TimedOut when
#: it ran out of time, LeaseLost when its lease was taken over, a 4xx VisionFnError for bad input.
Work = Callable[[Lease], tuple[dict[str, Any], list[str]]]


class TaskJob(BaseModel):
    """The body of a job-queue message."""

    model_config = ConfigDict(extra="forbid")

    uid: str = Field(pattern=r"^[0-9a-f]{32}$")


TASK_JOB = TypeAdapter(TaskJob)


def store_and_dispatch(tasks: TaskRepository, store: ObjectStore, task: TaskOut, inputs: list[tuple[bytes, str]]) -> TaskOut:
    """After the task's row (first: the thumbnail function records on it as soon as an upload
    lands, and its message is in the same transaction): store its inputs (``(data, content
    type)`` for each of its ``input_files``), then send its message. If the inputs cannot be
    stored, the task ends in ``error`` and the client gets 503."""
    try:
        store.put_many([(key, data, content_type) for key, (data, content_type) in zip(task.input_files, inputs, strict=True)])
    except Exception as error:
        tasks.abandon(task.uid, f"The inputs could not be stored: {error}")
        raise ServiceUnavailable(f"The inputs could not be stored, try again: {error}") from error
    log.debug("task %s: inputs stored", task.uid)
    tasks.dispatch(task.uid)
    return task


class TaskWorker:
    """Takes the tasks of one job queue (``kind`` names them in the log)."""

    def __init__(self, kind: str, tasks: TaskRepository, queue: JobQueue, settings: Settings) -> None:
        self.kind = kind
        self.tasks = tasks
        self.queue = queue
        self.settings = settings

    def take(self, uid: str, record: SqsRecord, work: Work) -> Outcome:
        """Claim the task and run ``work`` on it; what the job's message needs next."""
        with log_context(task_uid=uid):
            return self._take(uid, record, work)

    def _take(self, uid: str, record: SqsRecord, work: Work) -> Outcome:
        dead_letter = self.queue.is_dead_letter(record)
        receive_count = record.attributes.approximate_receive_count
        claim = self.tasks.claim(uid, self.settings.task_lease_seconds, delivery=receive_count)
        if claim is Claim.MISSING:
            log.warning("dropped job %s: no task %s", record.message_id, uid)
            return Outcome.DROPPED
        if claim is Claim.FINISHED:
            log.info("task %s already finished; nothing to do", uid)
            return Outcome.HANDLED
        if claim is Claim.BUSY:
            raise Busy(f"task {uid} is held by another worker's lease", self.tasks.lease_seconds_left(uid))
        log.debug("task %s claimed: attempt %d, delivery %d", uid, claim.attempt, receive_count)
        if dead_letter:  # every delivery died (crash, kill, out of memory): end it, never stuck
            count = self.settings.max_receive_count
            return self._finish(claim, lambda lease: self.tasks.fail(lease, DEAD_LETTER_ERROR.format(count=count)))
        try:
            result_data, result_files = work(claim)
        except LeaseLost as error:
            log.warning("task %s: %s; this attempt stopped", uid, error.detail)
            return Outcome.LEFT
        except TimedOut as error:
            message = str(error.detail)
            log.warning("task %s: %s", uid, message)
            return self._finish(claim, lambda lease: self.tasks.fail(lease, message))
        except Exception as error:
            outcome = self._failed(claim, error, receive_count)
            if outcome is Outcome.RETRY:  # given back: the job comes back soon, not after its visibility timeout
                bring_back_in(self.queue.keep_invisible, record, RETRY_DELAY_SECONDS)
            return outcome
        return self._finish(claim, lambda lease: self.tasks.complete(lease, result_data, result_files))

    def heartbeat(self, lease: Lease, record: SqsRecord, progress: dict[str, Any] | None = None) -> None:
        """Keep the task and its job while the work runs: the task's lease first (LeaseLost stops
        the work; the work's ``progress``, when given, is written with it), then the message, for
        twice as long (``MESSAGE_HOLD_LEASES``). The lease is what the work's writes are fenced
        by; the message only brings the task back if this worker dies. So a message that cannot
        be kept (received again after a late heartbeat, or deleted) is logged and the work goes
        on: stopping it would leave a task that no message brings back."""
        self.tasks.renew(lease, self.settings.task_lease_seconds, progress)
        try:
            self.queue.keep_invisible(record, MESSAGE_HOLD_LEASES * self.settings.task_lease_seconds)
        except Exception as error:
            log.warning(
                "task %s: message %s not kept invisible (%s); the work goes on under its lease", lease.key, record.message_id, error
            )

    def timeout_message(self, invocation: Invocation) -> str:
        return f"Timed out after {invocation.timeout_seconds} s (the function's Timeout); stopped"

    def _failed(self, lease: Lease, error: Exception, receive_count: int) -> Outcome:
        """Bad input ends the task; anything else is retried, and ends it on the last delivery."""
        detail = error.detail if isinstance(error, VisionFnError) else f"{type(error).__name__}: {error}"
        if isinstance(error, VisionFnError) and error.is_client_error:
            log.info("task %s: bad input: %s", lease.key, detail)
            return self._finish(lease, lambda lease: self.tasks.fail(lease, str(detail)))
        if receive_count >= self.settings.max_receive_count:
            log.error("task %s failed on its last delivery (%d): %s", lease.key, receive_count, detail)
            return self._finish(lease, lambda lease: self.tasks.fail(lease, f"Failed after {receive_count} attempts: {detail}"))
        log.warning("task %s failed on delivery %d, released for the retry: %s", lease.key, receive_count, detail)
        self._finish(lease, lambda lease: self.tasks.release(lease, f"delivery {receive_count} failed: {detail}"))
        return Outcome.RETRY

    def _finish(self, lease: Lease, write: Callable[[Lease], object]) -> Outcome:
        """The attempt's last write, fenced by its lease (a late worker changes nothing)."""
        try:
            task = write(lease)
        except LeaseLost as error:
            log.warning("task %s: %s; its result is not recorded", lease.key, error.detail)
            return Outcome.LEFT
        if isinstance(task, TaskOut):
            finished = time.time()
            emit_metrics(
                f"task {task.uid} {task.status} ({self.kind}, attempt {lease.attempt})" + (f": {task.error}" if task.error else ""),
                {"tool": task.tool},
                {
                    "tasks": (1, "Count"),
                    "task_errors": (int(task.status == "error"), "Count"),
                    "task_queue_wait": ((lease.taken_at - task.created_at.timestamp()) * 1000, "Milliseconds"),
                    "task_run_time": ((finished - lease.taken_at) * 1000, "Milliseconds"),
                },
                owner=task.owner,
                attempt=lease.attempt,
            )
        return Outcome.HANDLED
