"""Matching as asynchronous tasks: submit (validate, store, queue) and work (claim, run, finish)."""

from __future__ import annotations

import logging
import math
import mimetypes
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.batch import Invocation, Outcome
from shared.errors import LeaseLost, RequestValidationFailed, ServiceUnavailable, TaskNotFound, TimedOut, VisionFnError
from shared.events import SqsRecord
from shared.faults import extra_work_seconds, inject_fault_if_requested
from shared.leases import Claim, Lease
from shared.matching.defaults import ToolDefaults
from shared.matching.steps import StepAnswers, StepJob, no_answer
from shared.matching.tool import MatchTool
from shared.matching.tools import run_tool
from shared.messaging import JobQueue
from shared.settings import Settings
from shared.storage import ObjectStore
from shared.tasks import TaskOut, TaskRepository
from shared.work_processes import WorkProcesses

log = logging.getLogger("visionfn.matching")

DEAD_LETTER_ERROR = (
    "Gave up after {count} deliveries: the worker stopped each time without finishing "
    "(crash, timeout or out of memory)"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_LENGTH = 100
#: Seconds kept, before the function's deadline, to record a timed-out task.
TIMEOUT_MARGIN_SECONDS = 1.0


class MatchJob(BaseModel):
    """The body of a job-queue message: a task's uid (a chain's step is a ``StepJob``)."""

    model_config = ConfigDict(extra="forbid")

    uid: str = Field(pattern=r"^[0-9a-f]{32}$")


JOB = TypeAdapter(MatchJob | StepJob)


@dataclass(frozen=True)
class Upload:
    filename: str | None
    data: bytes


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def safe_file_name(filename: str | None, fallback: str) -> str:
    """The client's file name reduced to a harmless object-key segment (no paths, no dots first)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    name = _UNSAFE.sub("_", base).lstrip("._")[-MAX_NAME_LENGTH:]
    return name or fallback


def input_keys(uid: str, named: list[tuple[str, Upload]]) -> list[str]:
    """Where a task's inputs are stored: ``uploads/<uid>/<safe file name>``, one key each."""
    keys: list[str] = []
    for field, upload in named:
        name = safe_file_name(upload.filename, field)
        key = f"uploads/{uid}/{name}"
        keys.append(key if key not in keys else f"uploads/{uid}/{field}-{name}")
    return keys


def store_and_dispatch(tasks: TaskRepository, store: ObjectStore, task: TaskOut, inputs: list[Upload]) -> TaskOut:
    """After the task's row (first: the thumbnail function records on it as soon as an upload
    lands, and its message is in the same transaction): store its inputs, then send its message.
    If the inputs cannot be stored, the task ends in ``error`` and the client gets 503."""
    try:
        store.put_many([(key, upload.data, _content_type(key)) for key, upload in zip(task.input_files, inputs, strict=True)])
    except Exception as error:
        tasks.abandon(task.uid, f"The inputs could not be stored: {error}")
        raise ServiceUnavailable(f"The inputs could not be stored, try again: {error}") from error
    tasks.dispatch(task.uid)
    return task


class MatchService:
    def __init__(
        self,
        tool: MatchTool,
        store: ObjectStore,
        tasks: TaskRepository,
        defaults: ToolDefaults,
        queue: JobQueue,
        work: WorkProcesses,
        settings: Settings,
        steps: StepAnswers,
    ) -> None:
        self.tool = tool
        self.store = store
        self.tasks = tasks
        self.defaults = defaults
        self.queue = queue
        self.work = work
        self.settings = settings
        self.steps = steps

    # --- submission (the HTTP request) -----------------------------------------------------------
    def submit(self, owner: str, form: dict[str, str], uploads: dict[str, Upload]) -> TaskOut:
        """Validate everything, create the task with its job, store the inputs, send the job."""
        params = self._validated_params(owner, form, uploads)
        inputs = [uploads[spec.field] for spec in self.tool.inputs]
        checked = []
        for spec, upload in zip(self.tool.inputs, inputs, strict=True):
            try:
                checked.append(self.tool.check_input(spec, upload.data))
            except VisionFnError as error:
                raise error.about(f"{spec.field} ({safe_file_name(upload.filename, 'no name')})") from error
        self.tool.check(checked, params)
        if not self.queue.queue_url:
            raise ServiceUnavailable("No job queue is configured (VISIONFN_JOB_QUEUE_URL)")

        uid = uuid.uuid4().hex
        keys = input_keys(uid, [(spec.field, upload) for spec, upload in zip(self.tool.inputs, inputs, strict=True)])
        task = self.tasks.create(self.tool.name, params.model_dump(), keys, uid=uid, job_queue=self.queue.queue_url, owner=owner)
        return store_and_dispatch(self.tasks, self.store, task, inputs)

    def _validated_params(self, owner: str, form: dict[str, str], uploads: dict[str, Upload]) -> Any:
        errors: list[dict[str, Any]] = [
            {"type": "missing", "loc": ["body", spec.field], "msg": "Field required", "input": None}
            for spec in self.tool.inputs
            if spec.field not in uploads
        ]
        file_fields = {spec.field for spec in self.tool.inputs}
        try:  # a file field sent as text is reported missing above, not as an unknown parameter
            params = self.defaults.resolve(self.tool.name, owner, {k: v for k, v in form.items() if k not in file_fields})
        except RequestValidationFailed as error:
            errors.extend(error.detail)
        if errors:
            raise RequestValidationFailed(errors)
        return params

    # --- work (the job queue's event) ---------------------------------------------------------
    def handle_job(self, record: SqsRecord, invocation: Invocation) -> Outcome:
        try:
            job = JOB.validate_json(record.body)
        except ValidationError:
            log.warning("dropped job %s: neither {\"uid\"} nor a chain step: %r", record.message_id, record.body[:200])
            return Outcome.DROPPED
        if isinstance(job, StepJob):
            return self._handle_step(job, record, invocation)
        return self._handle_task(job.uid, record, invocation)

    def _handle_step(self, job: StepJob, record: SqsRecord, invocation: Invocation) -> Outcome:
        """A chain's step: its task is opened from the chain, worked as any task (heartbeating the
        state machine too), and the state machine is answered once it has finished."""
        try:
            step = self.tasks.open_step(job.chain, job.step, abandoned=no_answer(self.settings))
        except TaskNotFound:
            log.warning("dropped step %d of chain %s: no such chain step", job.step, job.chain)
            self.steps.fail(job.task_token, f"No step {job.step} in chain {job.chain}")
            return Outcome.DROPPED
        if step.tool != self.tool.name:
            self.steps.fail(job.task_token, f"Step {job.step} is a {step.tool} step, sent to the {self.tool.name} queue")
            return Outcome.DROPPED
        outcome = self._handle_task(step.uid, record, invocation, heartbeat=lambda: self.steps.heartbeat(job.task_token))
        self.steps.answer(job.task_token, self.tasks.get(step.uid), type(self.tool))
        return outcome

    def _handle_task(self, uid: str, record: SqsRecord, invocation: Invocation,
                     heartbeat: Callable[[], None] | None = None) -> Outcome:
        dead_letter = self.queue.is_dead_letter(record)
        claim = self.tasks.claim(uid, self.settings.task_lease_seconds)
        if claim is Claim.MISSING:
            log.warning("dropped job %s: no task %s", record.message_id, uid)
            return Outcome.DROPPED
        if claim is Claim.FINISHED:
            log.info("task %s already finished; nothing to do", uid)
            return Outcome.HANDLED
        if claim is Claim.BUSY:  # back when the lease lapses (if its worker died), not a whole timeout later
            seconds = math.ceil(self.tasks.lease_seconds_left(uid)) + 1
            log.info("task %s is held by another worker's lease; retried in %d s", uid, seconds)
            self.queue.keep_invisible(record, seconds)
            return Outcome.RETRY
        if dead_letter:  # every delivery died (crash, kill, out of memory): end it, never stuck
            return self._finish(claim, lambda lease: self.tasks.fail(lease, DEAD_LETTER_ERROR.format(
                count=self.settings.max_receive_count)))
        return self._work(claim, record, invocation, heartbeat)

    def _work(self, lease: Lease, record: SqsRecord, invocation: Invocation,
              also_heartbeat: Callable[[], None] | None) -> Outcome:
        """Run the tool in a work process, heartbeating the lease and the message meanwhile (and
        ``also_heartbeat``: a chain step's state machine). The task ends `done` or `error`, or is
        released for the retry."""
        lease_seconds = self.settings.task_lease_seconds

        def heartbeat() -> None:  # the task's lease first, then the message: the lease lapses first
            self.tasks.renew(lease, lease_seconds)
            self.queue.keep_invisible(record, lease_seconds)
            if also_heartbeat:
                also_heartbeat()

        receive_count = record.attributes.approximate_receive_count
        try:
            task = self.tasks.get(lease.key)
            inputs = self.store.get_many(task.input_files)
            inject_fault_if_requested(inputs[0].metadata, receive_count, self.settings)
            result_data, pictures = self.work.run(
                run_tool,
                (self.tool.name, [stored.data for stored in inputs], task.params,
                 extra_work_seconds(inputs[0].metadata, self.settings)),
                deadline=invocation.deadline - TIMEOUT_MARGIN_SECONDS,
                timeout_message=f"Timed out after {invocation.timeout_seconds} s (the function's Timeout); stopped",
                tick=heartbeat,
                tick_seconds=lease_seconds / 3,
            )
            folder = f"results/{task.parent_uid}/step-{task.step}" if task.parent_uid else f"results/{lease.key}"
            results = [(f"{folder}/{name}", data, _content_type(name)) for name, data in pictures.items()]
            self.store.put_many(results)
        except LeaseLost as error:
            log.warning("task %s: %s; this attempt stopped", lease.key, error.detail)
            return Outcome.HANDLED
        except TimedOut as error:
            message = str(error.detail)
            log.warning("task %s: %s", lease.key, message)
            return self._finish(lease, lambda lease: self.tasks.fail(lease, message))
        except Exception as error:
            return self._failed(lease, error, receive_count)
        return self._finish(lease, lambda lease: self.tasks.complete(lease, result_data, [key for key, _, _ in results]))

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
        self._finish(lease, self.tasks.release)
        return Outcome.RETRY

    def _finish(self, lease: Lease, write: Callable[[Lease], object]) -> Outcome:
        """The attempt's last write, fenced by its lease (a late worker changes nothing)."""
        try:
            task = write(lease)
        except LeaseLost as error:
            log.warning("task %s: %s; its result is not recorded", lease.key, error.detail)
            return Outcome.HANDLED
        if isinstance(task, TaskOut):
            log.info("task %s %s (%s, attempt %d)%s", task.uid, task.status, self.tool.name, lease.attempt,
                     f": {task.error}" if task.error else "")
        return Outcome.HANDLED
