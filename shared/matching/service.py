"""Matching as asynchronous tasks: submit (validate, store, queue) and work (claim, run, finish)."""

from __future__ import annotations

import logging
import mimetypes
import re
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from shared.matching.defaults import ToolDefaults
from shared.matching.settings import MatchingSettings
from shared.matching.steps import StepAnswers, StepJob, no_answer
from shared.matching.tool import MatchTool
from shared.matching.tools import run_tool
from shared.platform.batch import Invocation, Outcome, read_message
from shared.platform.direct_uploads import FileKind, UploadedFile
from shared.platform.errors import RequestValidationFailed, ServiceUnavailable, TaskNotFound, VisionFnError
from shared.platform.events import SqsRecord
from shared.platform.faults import extra_work_seconds, inject_fault_if_requested
from shared.platform.leases import Lease
from shared.platform.logs import log_context
from shared.platform.messaging import JobQueue
from shared.platform.storage import ObjectStore
from shared.platform.task_jobs import TIMEOUT_MARGIN_SECONDS, TaskJob, TaskWorker, store_and_dispatch
from shared.platform.tasks import TaskOut, TaskRepository
from shared.platform.work_processes import WorkProcesses

log = logging.getLogger("visionfn.matching")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_LENGTH = 100


#: A job-queue message: a task's uid, or a chain's step.
JOB = TypeAdapter(TaskJob | StepJob)


def content_type(name: str) -> str:
    """The media type a stored file's name says."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def safe_file_name(filename: str | None, fallback: str) -> str:
    """The client's file name reduced to a harmless object-key segment (no paths, no dots first)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    name = _UNSAFE.sub("_", base).lstrip("._")[-MAX_NAME_LENGTH:]
    return name or fallback


def input_keys(uid: str, named: list[tuple[str, UploadedFile]]) -> list[str]:
    """Where a task's inputs are stored: ``uploads/<uid>/<safe file name>``, one key each."""
    keys: list[str] = []
    for field, upload in named:
        name = safe_file_name(upload.filename, field)
        key = f"uploads/{uid}/{name}"
        keys.append(key if key not in keys else f"uploads/{uid}/{field}-{name}")
    return keys


class MatchService:
    def __init__(
        self,
        tool: MatchTool,
        store: ObjectStore,
        tasks: TaskRepository,
        defaults: ToolDefaults,
        queue: JobQueue,
        work: WorkProcesses,
        settings: MatchingSettings,
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
        self.worker = TaskWorker(tool.name, tasks, queue, settings)

    # --- submission (the HTTP request) -----------------------------------------------------------
    @property
    def file_fields(self) -> dict[str, FileKind]:
        """The tool's file fields and what each takes (sent as parts or as uploads' keys)."""
        return {spec.field: spec.kind for spec in self.tool.inputs}

    def submit(self, owner: str, form: dict[str, str], uploads: dict[str, UploadedFile]) -> TaskOut:
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
        return store_and_dispatch(
            self.tasks, self.store, task, [(upload.data, content_type(key)) for key, upload in zip(keys, inputs, strict=True)]
        )

    def _validated_params(self, owner: str, form: dict[str, str], uploads: dict[str, UploadedFile]) -> Any:
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
        job = read_message(record, JOB, '{"uid"} or a chain step')
        if isinstance(job, StepJob):
            with log_context(chain_uid=job.chain, step=job.step):
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
        outcome = self._handle_task(step.uid, record, invocation, also_heartbeat=lambda: self.steps.heartbeat(job.task_token))
        self.steps.answer(job.task_token, self.tasks.get(step.uid), type(self.tool))
        return outcome

    def _handle_task(
        self, uid: str, record: SqsRecord, invocation: Invocation, also_heartbeat: Callable[[], None] | None = None
    ) -> Outcome:
        """Run the tool in a work process, heartbeating the lease and the message meanwhile (and
        ``also_heartbeat``: a chain step's state machine)."""

        def work(lease: Lease) -> tuple[dict[str, Any], list[str]]:
            def heartbeat() -> None:
                self.worker.heartbeat(lease, record)
                if also_heartbeat:
                    also_heartbeat()

            task = self.tasks.get(lease.key)
            inputs = self.store.get_many(task.input_files)
            log.debug("task %s: inputs read", lease.key)
            inject_fault_if_requested(inputs[0].metadata, record.attributes.approximate_receive_count, self.settings)
            result_data, pictures = self.work.run(
                run_tool,
                (self.tool.name, [stored.data for stored in inputs], task.params, extra_work_seconds(inputs[0].metadata, self.settings)),
                deadline=invocation.deadline - TIMEOUT_MARGIN_SECONDS,
                timeout_message=self.worker.timeout_message(invocation),
                tick=heartbeat,
                tick_seconds=self.settings.task_lease_seconds / 3,
            )
            folder = f"results/{task.parent_uid}/step-{task.step}" if task.parent_uid else f"results/{lease.key}"
            log.debug("task %s: worked", lease.key)
            results = [(f"{folder}/{name}", data, content_type(name)) for name, data in pictures.items()]
            self.store.put_many(results)
            log.debug("task %s: results stored", lease.key)
            return result_data, [key for key, _, _ in results]

        return self.worker.take(uid, record, work)
