"""Matching as asynchronous tasks: submit (validate, store, queue) and work (claim, run, finish)."""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from shared.errors import BadRequest, RequestValidationFailed, ServiceUnavailable, TaskNotFound, VisionFnError
from shared.events import SqsRecord
from shared.faults import inject_fault_if_requested
from shared.matching.defaults import ToolDefaults
from shared.matching.pictures import encode_pictures
from shared.matching.tool import MatchTool
from shared.messaging import JobQueue, TaskEvents
from shared.settings import Settings
from shared.storage import ObjectStore
from shared.tasks import Claim, TaskOut, TaskRepository

log = logging.getLogger("visionfn.matching")

#: Jobs arriving from a queue whose name ends so come from a dead-letter queue.
DEAD_LETTER_SUFFIX = "-dlq"
DEAD_LETTER_ERROR = (
    "Gave up after {count} deliveries: the worker stopped each time without finishing "
    "(crash, timeout or out of memory)"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_LENGTH = 100


class MatchJob(BaseModel):
    """The body of a job-queue message."""

    uid: str = Field(pattern=r"^[0-9a-f]{32}$")


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


class MatchService:
    def __init__(
        self,
        tool: MatchTool,
        store: ObjectStore,
        tasks: TaskRepository,
        defaults: ToolDefaults,
        queue: JobQueue,
        events: TaskEvents,
        settings: Settings,
    ) -> None:
        self.tool = tool
        self.store = store
        self.tasks = tasks
        self.defaults = defaults
        self.queue = queue
        self.events = events
        self.settings = settings

    # --- submission (the HTTP request) -----------------------------------------------------------
    def submit(self, form: dict[str, str], uploads: dict[str, Upload]) -> TaskOut:
        """Validate everything, create the task, store the inputs, queue the work; 201 material."""
        params = self._validated_params(form, uploads)
        inputs = [uploads[spec.field] for spec in self.tool.inputs]
        checked = []
        for spec, upload in zip(self.tool.inputs, inputs, strict=True):
            try:
                checked.append(self.tool.check_input(spec, upload.data))
            except VisionFnError as error:
                raise error.about(f"{spec.field} ({safe_file_name(upload.filename, 'no name')})") from error
        self.tool.check(checked, params)

        uid = uuid.uuid4().hex
        keys = self._input_keys(uid, inputs)
        # the row comes first: the thumbnail function records on it as soon as an upload lands
        task = self.tasks.create(self.tool.name, params.model_dump(), keys, uid=uid)
        try:
            self.store.put_many([(key, upload.data, _content_type(key)) for key, upload in zip(keys, inputs, strict=True)])
            self.queue.send(MatchJob(uid=uid).model_dump_json())
        except Exception as error:
            failed = self.tasks.fail(uid, f"The task could not be queued: {error}")
            with contextlib.suppress(VisionFnError):  # the queue's outage may be the bus's too
                self._announce(failed)
            raise ServiceUnavailable(f"The task could not be queued, try again: {error}") from error
        return task

    def _validated_params(self, form: dict[str, str], uploads: dict[str, Upload]) -> Any:
        errors: list[dict[str, Any]] = [
            {"type": "missing", "loc": ["body", spec.field], "msg": "Field required", "input": None}
            for spec in self.tool.inputs
            if spec.field not in uploads
        ]
        file_fields = {spec.field for spec in self.tool.inputs}
        try:  # a file field sent as text is reported missing above, not as an unknown parameter
            params = self.defaults.resolve(self.tool.name, {k: v for k, v in form.items() if k not in file_fields})
        except RequestValidationFailed as error:
            errors.extend(error.detail)
        if errors:
            raise RequestValidationFailed(errors)
        return params

    def _input_keys(self, uid: str, inputs: list[Upload]) -> list[str]:
        keys: list[str] = []
        for spec, upload in zip(self.tool.inputs, inputs, strict=True):
            name = safe_file_name(upload.filename, spec.field)
            key = f"uploads/{uid}/{name}"
            keys.append(key if key not in keys else f"uploads/{uid}/{spec.field}-{name}")
        return keys

    # --- work (the job queue's event) ---------------------------------------------------------
    def handle_job(self, record: SqsRecord) -> None:
        try:
            job = MatchJob.model_validate_json(record.body)
        except ValidationError as error:
            raise BadRequest(f"Job message is not {{\"uid\": <32 hex>}}: {record.body[:200]!r}") from error
        if (record.event_source_arn or "").endswith(DEAD_LETTER_SUFFIX):
            self._give_up(job.uid)
            return
        if not self._claim(job.uid):  # a redelivery after the event may have been lost: announce again
            self._announce(self.tasks.get(job.uid))
            return
        self._announce(self._work(self.tasks.get(job.uid), record.attributes.approximate_receive_count))

    def _give_up(self, uid: str) -> None:
        """A job from the dead-letter queue: every delivery crashed, timed out or ran out of memory
        (a failure the worker saw itself already ended the task). End it in `error`, never stuck."""
        if self._claim(uid):
            self._announce(self.tasks.fail(uid, DEAD_LETTER_ERROR.format(count=self.settings.max_receive_count)))

    def _claim(self, uid: str) -> bool:
        """True when the task is now ours, False when it is already finished; otherwise raise:
        not found (dropped) or held by a live worker's lease (retried later)."""
        claim = self.tasks.claim(uid, self.settings.task_lease_seconds)
        if claim is Claim.MISSING:
            raise TaskNotFound(uid)
        if claim is Claim.BUSY:
            raise ServiceUnavailable(f"Task {uid} is being worked on by another worker (within its lease); retry later")
        return claim is Claim.CLAIMED

    def _work(self, task: TaskOut, receive_count: int) -> TaskOut:
        """Run the tool; the task ends `done` or `error`, or is released for the retry."""
        try:
            return self._run(task, receive_count)
        except Exception as error:
            detail = error.detail if isinstance(error, VisionFnError) else f"{type(error).__name__}: {error}"
            if isinstance(error, VisionFnError) and error.is_client_error:
                log.info("task %s: bad input: %s", task.uid, detail)
                return self.tasks.fail(task.uid, str(detail))
            if receive_count >= self.settings.max_receive_count:
                log.error("task %s failed on its last delivery (%d): %s", task.uid, receive_count, detail)
                return self.tasks.fail(task.uid, f"Failed after {receive_count} attempts: {detail}")
            self.tasks.release(task.uid)
            raise

    def _run(self, task: TaskOut, receive_count: int) -> TaskOut:
        inputs = self.store.get_many(task.input_files)
        inject_fault_if_requested(inputs[0].metadata, receive_count, self.settings)
        params = self.tool.params_model.model_validate(task.params)
        output = self.tool.run([stored.data for stored in inputs], params)
        encoded = encode_pictures(output.pictures)
        results = [(f"results/{task.uid}/{name}", data, _content_type(name)) for name, data in encoded.items()]
        self.store.put_many(results)
        return self.tasks.complete(task.uid, output.result_data, [key for key, _, _ in results])

    def _announce(self, task: TaskOut) -> None:
        self.events.task_finished(task)
        log.info("task %s %s (%s)", task.uid, task.status, self.tool.name)
