"""Chain matching: one image pair through up to ten matching steps, in order, until a step finds a
match. A Step Functions execution (infra/statemachines/chain_matching.asl.json) sends each step
to its tool's job queue and waits for the worker's answer; its last state sends the chain's uid
to the chain queue, and this module writes the chain's result from its steps' tasks.

The steps' tasks are the record: a step is opened (its task made) when its job first reaches a
worker, and opening step n ends every unfinished step before it (the state machine gave up on
it), so a late worker cannot change what the chain already went past."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.matching.defaults import ToolDefaults
from shared.matching.service import content_type, input_keys, safe_file_name
from shared.matching.settings import MatchingSettings
from shared.matching.steps import MAX_STEPS, ChainParams, ChainStep, no_answer, read_steps
from shared.matching.tools import TOOLS, tool_class
from shared.platform.batch import Invocation, Outcome, read_message
from shared.platform.direct_uploads import UploadedFile
from shared.platform.errors import RequestValidationFailed, ServiceUnavailable, TaskNotFound, VisionFnError
from shared.platform.events import SqsRecord
from shared.platform.leases import FINISHED_STATUSES
from shared.platform.logs import current_request_id, new_request_id
from shared.platform.storage import ObjectStore
from shared.platform.task_jobs import store_and_dispatch
from shared.platform.tasks import Execution, TaskOut, TaskRepository

log = logging.getLogger("visionfn.matching.chain")

#: The chain's two files; each tool takes them in this order (image/query/model, template/train/scene).
INPUT_FIELDS = ("image", "template")
#: A chain's trail, one letter per step run: found, not found, failed.
FOUND, NOT_FOUND, FAILED = "f", "n", "e"
#: The error of a step that the state machine went past before its job reached a worker.
NEVER_DELIVERED = "Not run: its job never reached a worker (the state machine went on to the next step)"


class ChainForm(BaseModel):
    """The multipart fields of POST /api/v1/match/chain besides the two files (the API's
    description; the ``steps`` field is read as ``ChainStep``s, see ``read_steps``)."""

    steps: str = Field(
        description=f'JSON array of 1..{MAX_STEPS} {{"tool": {"|".join(map(json.dumps, TOOLS))}, '
        '"params": {...}}; missing parameters default from the owner\'s settings of the tool',
        examples=['[{"tool": "template", "params": {"threshold": 0.9}}, {"tool": "feature"}]'],
    )


class ChainFinished(BaseModel):
    """The state machine's last message: the chain's steps are over."""

    model_config = ConfigDict(extra="forbid")

    uid: str = Field(pattern=r"^[0-9a-f]{32}$")


CHAIN_FINISHED = TypeAdapter(ChainFinished)


class StepResult(BaseModel):
    step: int
    tool: str
    params: dict[str, Any]
    status: Literal["done", "skipped", "error"]
    found: bool
    result_data: dict[str, Any] | None
    result_files: list[str]
    error: str | None = None


class ChainResult(BaseModel):
    """The chain task's ``result_data``."""

    chain_result: Literal["found", "not_found"]
    completed_step: int  # the last step run (the one that found, if one did)
    total_steps: int
    steps: list[StepResult]


class RecoveryReport(BaseModel):
    finished: int  # chains finalized from their ended execution


def chain_result(
    steps: list[ChainStep],
    opened: dict[int, TaskOut],
    stopped: str | None = None,
) -> tuple[Literal["done", "error"], ChainResult, str | None]:
    """The chain's status, result and error from its steps (tool, params) and its steps' tasks
    (all finished). ``stopped``: why the execution ended early (the steps not run fail)."""
    trail = trail_of(steps, opened)
    results = []
    for number, spec in enumerate(steps, start=1):
        task, letter = opened.get(number), trail[number - 1] if number <= len(trail) else None
        result = StepResult(
            step=number, tool=spec.tool, params=spec.params.model_dump(), status="skipped", found=False, result_data=None, result_files=[]
        )
        if letter in (FOUND, NOT_FOUND) and task is not None:
            result.status, result.found = "done", letter == FOUND
            result.result_data, result.result_files = task.result_data, task.result_files
        elif letter is not None or (stopped and FOUND not in trail):
            result.status = "error"
            result.error = (task.error if task is not None else None) or (f"Not run: {stopped}" if letter is None else NEVER_DELIVERED)
        results.append(result)
    found = FOUND in trail
    chain = ChainResult(chain_result="found" if found else "not_found", completed_step=len(trail), total_steps=len(steps), steps=results)
    failed = [result for result in results if result.status == "error"]
    if stopped and not found:
        return "error", chain, f"The chain stopped: {stopped}"
    if trail and len(failed) == len(trail):
        return "error", chain, "Every step failed: " + "; ".join(f"step {r.step}: {r.error}" for r in failed)
    return "done", chain, None


def trail_of(steps: list[ChainStep], opened: dict[int, TaskOut]) -> str:
    """What the steps' tasks tell, a letter per step run, up to the first find. A step never
    opened counts as failed when a later step was (the state machine went past it: its job never
    reached a worker), and ends the trail otherwise."""
    trail = ""
    last_opened = max(opened, default=0)
    for number, spec in enumerate(steps, start=1):
        task = opened.get(number)
        if task is None:
            if number > last_opened:
                break
            trail += FAILED
            continue
        if task.status == "done" and tool_class(spec.tool).found(task.result_data):
            return trail + FOUND
        trail += NOT_FOUND if task.status == "done" else FAILED
    return trail


class ChainService:
    def __init__(self, store: ObjectStore, tasks: TaskRepository, defaults: ToolDefaults, sfn: Any, settings: MatchingSettings) -> None:
        self.store = store
        self.tasks = tasks
        self.defaults = defaults
        self.sfn = sfn
        self.settings = settings

    # --- submission (the HTTP request) -------------------------------------------------------
    def submit(self, owner: str, form: dict[str, str], uploads: dict[str, UploadedFile]) -> TaskOut:
        """Validate the steps and the files, create the chain task with the start of its execution,
        store the inputs, start the execution."""
        steps = self._validated_steps(owner, form, uploads)
        inputs = [uploads[field] for field in INPUT_FIELDS]
        self._check_readable(steps, inputs)
        if not self.settings.chain_state_machine_arn or any(s.tool not in self.settings.chain_step_queues for s in steps):
            raise ServiceUnavailable("Chain matching is not configured (VISIONFN_CHAIN_STATE_MACHINE_ARN, VISIONFN_CHAIN_STEP_QUEUES)")
        uid = uuid.uuid4().hex
        execution = Execution(
            self.settings.chain_state_machine_arn,
            execution_input(uid, [self.settings.chain_step_queues[step.tool] for step in steps], self.settings),
        )
        keys = input_keys(uid, list(zip(INPUT_FIELDS, inputs, strict=True)))
        task = self.tasks.create("chain", ChainParams(steps=steps).model_dump(), keys, uid=uid, owner=owner, execution=execution)
        return store_and_dispatch(
            self.tasks, self.store, task, [(upload.data, content_type(key)) for key, upload in zip(keys, inputs, strict=True)]
        )

    def _validated_steps(self, owner: str, form: dict[str, str], uploads: dict[str, UploadedFile]) -> list[ChainStep]:
        """The steps, every parameter resolved over the owner's defaults: the one validation of the
        steps (what follows carries them typed). All problems in one 422."""
        errors: list[dict[str, Any]] = [
            {"type": "missing", "loc": ["body", field], "msg": "Field required", "input": None}
            for field in (*INPUT_FIELDS, "steps")
            if field not in (uploads if field in INPUT_FIELDS else form)
        ]
        errors += [
            {"type": "extra_forbidden", "loc": ["body", name], "msg": "Extra inputs are not permitted", "input": value}
            for name, value in form.items()
            if name not in ("steps", *INPUT_FIELDS)
        ]
        steps: list[ChainStep] = []
        if "steps" in form:
            try:
                steps = read_steps(form["steps"], self.defaults.of_owner(owner))
            except ValidationError as error:
                errors += _located(RequestValidationFailed.from_pydantic(error, "body").detail, ["steps"])
        if errors:
            raise RequestValidationFailed(errors)
        return steps

    def _check_readable(self, steps: list[ChainStep], inputs: list[UploadedFile]) -> None:
        """400/413 unless at least one step's tool can read both files (a step whose tool cannot
        fails when it runs, and the chain goes on)."""
        problems: list[VisionFnError] = []
        for name in dict.fromkeys(step.tool for step in steps):
            tool = tool_class(name)(self.settings)
            try:
                for spec, field, upload in zip(tool.inputs, INPUT_FIELDS, inputs, strict=True):
                    try:
                        tool.check_input(spec, upload.data)
                    except VisionFnError as error:
                        raise error.about(f"{field} ({safe_file_name(upload.filename, 'no name')})") from error
            except VisionFnError as error:
                problems.append(error)
                continue
            return
        raise problems[0]

    # --- the end of an execution ---------------------------------------------------------------
    def handle_finished(self, record: SqsRecord, _invocation: Invocation) -> Outcome:
        """The chain queue (and its dead letters): finalize the chain from the trail."""
        message = read_message(record, CHAIN_FINISHED, '{"uid"}')
        try:
            self.finish(message.uid)
        except TaskNotFound:
            log.warning("dropped chain message %s: no chain %s", record.message_id, message.uid)
            return Outcome.DROPPED
        return Outcome.HANDLED

    def finish(self, uid: str, stopped: str | None = None) -> TaskOut | None:
        """Write the chain's result once (a second finish of a finished chain changes nothing).
        A step still unfinished is ended first: the execution is over, nobody waits for it."""
        chain = self.tasks.get(uid)
        if chain.status in FINISHED_STATUSES:
            return None
        self.tasks.end_unfinished_steps(uid, f"Not finished: {stopped}" if stopped else no_answer(self.settings))
        status, result, error = chain_result(ChainParams.model_validate(chain.params).steps, self.tasks.steps_of(uid), stopped)
        files = [name for step in result.steps for name in step.result_files]
        finished = self.tasks.finish_chain(uid, status, result.model_dump(), files, error)
        if finished:
            log.info(
                "chain %s %s: %s after %d of %d steps%s",
                uid,
                status,
                result.chain_result,
                result.completed_step,
                result.total_steps,
                f" ({error})" if error else "",
            )
        return finished

    def recover(self) -> RecoveryReport:
        """The schedule: chains whose execution ended without finalizing them (it failed, timed out
        or was stopped, or its last message was lost) are finalized from the execution."""
        finished = 0
        for chain in self.tasks.unfinished_chains(idle_seconds=self.settings.outbox_grace_seconds):
            try:
                execution = self.sfn.describe_execution(executionArn=chain.execution_arn)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                    log.warning("chain %s: execution not described: %s", chain.uid, error)
                continue  # not started yet: the sweeper sends its start
            except BotoCoreError as error:
                log.warning("chain %s: execution not described: %s", chain.uid, error)
                continue
            if execution["status"] == "RUNNING":
                continue
            stopped = (
                None
                if execution["status"] == "SUCCEEDED"
                # succeeded: its last message was lost
                else (f"its execution {execution['status']} ({execution.get('error') or 'no error'}: {execution.get('cause') or ''})")
            )
            if self.finish(chain.uid, stopped):
                finished += 1
        return RecoveryReport(finished=finished)


def execution_input(uid: str, queue_urls: list[str], settings: MatchingSettings) -> dict[str, Any]:
    """What the state machine runs on: the steps as a list it walks without intrinsic functions
    (``next``: ``{step, queue_url, next}``), each step's heartbeat and timeout, and the id of the
    request being served (each step's message carries it as its ``request_id`` attribute)."""
    steps: dict[str, Any] | None = None
    for number in range(len(queue_urls), 0, -1):
        steps = {"step": number, "queue_url": queue_urls[number - 1], **({"next": steps} if steps else {})}
    return {
        "uid": uid,
        "request_id": current_request_id() or new_request_id(),
        "next": steps,
        "step_heartbeat_seconds": settings.chain_step_heartbeat_seconds,
        "step_timeout_seconds": settings.chain_step_timeout_seconds,
    }


def _located(details: list[dict[str, Any]], prefix: list[Any]) -> list[dict[str, Any]]:
    """pydantic's problems (loc ``["body", ...]``) placed under ``["body", *prefix, ...]``."""
    return [{**detail, "loc": ["body", *prefix, *detail["loc"][1:]]} for detail in details]
