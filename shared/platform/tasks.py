"""Task repository: create, read, claim atomically, finish. Callers never see ORM objects."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared.platform.db.engine import dialect_insert, session_scope, within
from shared.platform.db.models import OutboxMessage, Task, TaskEvent, utc_now
from shared.platform.errors import TaskNotFound
from shared.platform.leases import FINISHED_STATUSES, Claim, Lease, LeasedTable
from shared.platform.logs import current_request_id
from shared.platform.messaging import Outbox
from shared.platform.pages import page_statements

log = logging.getLogger("visionfn.tasks")

TaskStatus = Literal["queued", "processing", "done", "error"]


class TaskOut(BaseModel):
    """A task as clients see it."""

    model_config = ConfigDict(from_attributes=True)

    uid: str
    owner: str  # who submitted it (the API key's owner)
    status: TaskStatus
    tool: str
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    input_files: list[str]
    thumbnails: list[str]
    result_files: list[str]
    result_data: dict[str, Any] | None
    error: str | None
    attempts: int  # how many times a worker took the task (deliveries that reached the work)
    execution_arn: str | None = None  # a chain's state machine execution
    request_id: str | None = None  # the id of the request that submitted it (X-Request-Id): in its logs, events and webhooks
    parent_uid: str | None = Field(None, exclude=True)  # a chain's step: its chain (never shown)
    step: int | None = Field(None, exclude=True)  # a chain's step: its number, from 1


class TimelineEntry(BaseModel):
    """One moment of a task's life: ``submitted``, ``queued``, ``started`` (an attempt),
    ``released`` (an attempt given back for a retry), ``done`` or ``error``; a chain's steps'
    moments carry their ``step``."""

    at: datetime
    event: str
    attempt: int | None = None
    step: int | None = None
    detail: str | None = None


class TaskTimeline(BaseModel):
    """A task's moments in time order (GET /api/v1/tasks/{uid}/timeline)."""

    uid: str
    request_id: str | None  # the id its log lines carry (make logs ID=...)
    events: list[TimelineEntry]


class TaskPage(BaseModel):
    total: int
    tasks: list[TaskOut]


@dataclass(frozen=True)
class Execution:
    """A state machine execution a task starts once it is created (a chain)."""

    state_machine_arn: str
    input: dict[str, Any]

    def arn(self, name: str) -> str:
        """The ARN the execution named ``name`` gets."""
        return f"{self.state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def step_uid(chain_uid: str, step: int) -> str:
    """The uid of a chain's step: the same for every delivery of that step."""
    return hashlib.sha256(f"{chain_uid}/step/{step}".encode()).hexdigest()[:32]


def queued_row(
    uid: str,
    owner: str,
    tool: str,
    params: dict[str, Any],
    input_files: list[str],
    now: datetime | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The columns of a task that was just created: queued, nothing done yet."""
    now = now or utc_now()
    return {
        "request_id": request_id,
        "uid": uid,
        "owner": owner,
        "tool": tool,
        "status": "queued",
        "params": params,
        "input_files": input_files,
        "thumbnails": [],
        "result_files": [],
        "result_data": None,
        "error": None,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


class TaskRepository:
    """Tasks and the messages their changes send. With an ``outbox``, a task created with a
    ``job_queue`` gets its job in the same transaction, and a task that finishes gets its
    task-finished event in the transaction that finishes it; without one (read-only callers,
    tests of the table), no messages are written."""

    def __init__(self, database_url: str | None = None, outbox: Outbox | None = None, clock: Callable[[], datetime] = utc_now) -> None:
        self.database_url = database_url
        self.outbox = outbox
        self.leases = LeasedTable(Task, Task.uid, database_url, clock=clock)  # ``clock``: what "now" is for leases (tests set it)

    def create(
        self,
        tool: str,
        params: dict[str, Any],
        input_files: list[str],
        uid: str | None = None,
        job_queue: str | None = None,
        owner: str = "",
        execution: Execution | None = None,
    ) -> TaskOut:
        """A ``queued`` task and, with ``job_queue``, its job (with ``execution``, the start of its
        execution): both or neither. The message is sent by ``dispatch`` once the inputs are
        stored (or by the sweeper if this process dies first). Both carry the id of the request
        being served (its logs' ``request_id``)."""
        request_id = current_request_id()
        task = Task(**queued_row(uid or uuid.uuid4().hex, owner, tool, params, input_files, request_id=request_id))
        if execution:
            task.execution_arn = execution.arn(task.uid)
        with session_scope(self.database_url) as session:
            session.add(task)
            if job_queue and self.outbox:
                self.outbox.add_job(session, task.uid, job_queue, request_id)
            if execution and self.outbox:
                self.outbox.add_execution(session, task.uid, execution.state_machine_arn, execution.input)
            session.flush()
            return TaskOut.model_validate(task)

    def dispatch(self, uid: str) -> None:
        """Send the task's committed, unsent messages (its job, its task-finished event)."""
        if self.outbox:
            self.outbox.deliver(uid)

    def abandon(self, uid: str, error: str) -> TaskOut:
        """A submission that failed before its job was due: ``queued -> error``, its job dropped,
        the failure announced."""
        with session_scope(self.database_url) as session:
            task = session.scalar(
                update(Task)
                .where(Task.uid == uid, Task.status == "queued")
                .values(status="error", error=error, updated_at=self.leases.clock())
                .returning(Task)
            )
            if task is None:
                raise TaskNotFound(uid)
            if self.outbox:
                self.outbox.cancel_jobs(session, uid)
                self.outbox.add_task_finished(session, task)
            result = TaskOut.model_validate(task)
        self.dispatch(uid)
        return result

    def get(self, uid: str, owner: str | None = None) -> TaskOut:
        """The task; with ``owner``, only if it is theirs (another owner's task is "not found", and
        so is a chain's step: clients see steps in their chain's result)."""
        with session_scope(self.database_url) as session:
            task = session.get(Task, uid)
            if task is None or (owner is not None and (task.owner != owner or task.parent_uid is not None)):
                raise TaskNotFound(uid)
            return TaskOut.model_validate(task)

    def timeline(self, uid: str, owner: str) -> TaskTimeline:
        """The owner's task's moments in time order: submitted, queued (its job or execution
        sent), each attempt, its end; a chain's with its steps'. 404 as ``get``."""
        task = self.get(uid, owner)
        entries = [TimelineEntry(at=task.created_at, event="submitted")]
        with session_scope(self.database_url) as session:
            steps = dict(session.execute(select(Task.uid, Task.step).where(Task.parent_uid == uid)).tuples().all())
            queued = session.scalars(
                select(OutboxMessage.sent_at).where(
                    OutboxMessage.task_uid == uid, OutboxMessage.kind.in_(("job", "execution")), OutboxMessage.sent_at.is_not(None)
                )
            )
            entries += [TimelineEntry(at=at, event="queued") for at in queued]
            events = session.scalars(select(TaskEvent).where(TaskEvent.task_uid.in_([uid, *steps])).order_by(TaskEvent.id))
            entries += [
                TimelineEntry(at=event.at, event=event.event, attempt=event.attempt, step=steps.get(event.task_uid), detail=event.detail)
                for event in events
            ]
        return TaskTimeline(uid=uid, request_id=task.request_id, events=sorted(entries, key=lambda entry: entry.at))

    def page(self, offset: int, limit: int, owner: str | None = None) -> TaskPage:
        """Newest first; with ``owner``, that owner's tasks only. Chains' steps are not listed."""
        mine = [Task.parent_uid.is_(None), *([Task.owner == owner] if owner is not None else [])]
        count, rows = page_statements(Task, mine, [Task], [Task.created_at.desc(), Task.uid.desc()], offset, limit)
        with session_scope(self.database_url) as session:
            total = session.scalar(count) or 0
            return TaskPage(total=total, tasks=[TaskOut.model_validate(row) for row in session.scalars(rows)])

    def claim(self, uid: str, lease_seconds: int, delivery: int | None = None) -> Lease | Claim:
        """``queued -> processing`` exactly once; a lapsed lease (its worker died) may be reclaimed,
        and so may one an earlier ``delivery`` of the job holds (LeasedTable.claim). The attempt is
        on the task's timeline."""
        with session_scope(self.database_url) as session:
            claim = self.leases.claim(uid, lease_seconds, session=session, delivery=delivery)
            if isinstance(claim, Lease):
                session.add(TaskEvent(task_uid=uid, event="started", attempt=claim.attempt, at=self.leases.clock()))
        return claim

    def lease_seconds_left(self, uid: str) -> float:
        return self.leases.seconds_left(uid)

    def renew(self, lease: Lease, lease_seconds: int, progress: dict[str, Any] | None = None) -> None:
        """The lease renewed, with the work's ``progress`` (its result_data meanwhile) when given."""
        self.leases.renew(lease, lease_seconds, **({"result_data": progress} if progress is not None else {}))

    def release(self, lease: Lease, reason: str | None = None) -> None:
        """Give the task back for a retry (its timeline says why)."""

        def record(session: Session, _task: Task) -> None:
            session.add(TaskEvent(task_uid=lease.key, event="released", attempt=lease.attempt, detail=reason, at=self.leases.clock()))

        self.leases.write(lease, record, status="queued", lease_expires_at=None)

    def complete(self, lease: Lease, result_data: dict[str, Any], result_files: list[str]) -> TaskOut:
        return self._finish(lease, status="done", result_data=result_data, result_files=result_files, error=None)

    def fail(self, lease: Lease, error: str) -> TaskOut:
        return self._finish(lease, status="error", result_data=None, result_files=[], error=error)

    def _finish(self, lease: Lease, **values: Any) -> TaskOut:
        """The fenced last write, with the task-finished event in the same transaction."""

        def announce(session: Session, task: Task) -> TaskOut:
            session.add(TaskEvent(task_uid=task.uid, event=task.status, attempt=lease.attempt, at=self.leases.clock()))
            if self.outbox:
                self.outbox.add_task_finished(session, task)
            return TaskOut.model_validate(task)

        finished = self.leases.write(lease, announce, **values)
        self.dispatch(lease.key)
        return finished

    def add_thumbnail(self, uid: str, key: str, session: Session | None = None) -> bool:
        """Record a thumbnail on its task once (in ``session``'s transaction, when given: the upload
        handler's own); False when no task has that uid."""
        with within(session, self.database_url) as transaction:
            task = transaction.get(Task, uid, with_for_update=True)
            if task is None:
                return False
            if key not in task.thumbnails:
                task.thumbnails = [*task.thumbnails, key]
                task.updated_at = utc_now()
            return True

    # --- chains ----------------------------------------------------------------------------------
    def open_step(self, chain_uid: str, step: int, abandoned: str) -> TaskOut:
        """The task of a chain's step, made on its first delivery from the chain (the step's tool
        and parameters, the chain's inputs); the chain is ``processing`` from then on. The steps
        before it that are unfinished end in ``error`` (``abandoned``): the state machine went
        past them. 404 when the chain or the step does not exist."""
        uid, now = step_uid(chain_uid, step), utc_now()
        with session_scope(self.database_url) as session:
            chain = session.get(Task, chain_uid)
            if chain is None or chain.tool != "chain" or not 1 <= step <= len(steps := (chain.params or {}).get("steps", [])):
                raise TaskNotFound(uid)
            session.execute(
                dialect_insert(session, Task)
                .values(
                    **queued_row(
                        uid, chain.owner, steps[step - 1]["tool"], steps[step - 1]["params"], chain.input_files, now, chain.request_id
                    ),
                    parent_uid=chain_uid,
                    step=step,
                )
                .on_conflict_do_nothing(index_elements=[Task.uid])
            )
            session.execute(update(Task).where(Task.uid == chain_uid, Task.status == "queued").values(status="processing", updated_at=now))
            self._end_unfinished_steps(session, chain_uid, abandoned, Task.step < step)
            return TaskOut.model_validate(session.get(Task, uid))

    def end_unfinished_steps(self, chain_uid: str, error: str) -> None:
        """A chain's steps still queued or processing end in ``error`` (its execution is over)."""
        with session_scope(self.database_url) as session:
            self._end_unfinished_steps(session, chain_uid, error)

    @staticmethod
    def _end_unfinished_steps(session: Session, chain_uid: str, error: str, *where: Any) -> None:
        session.execute(
            update(Task)
            .where(Task.parent_uid == chain_uid, Task.status.not_in(FINISHED_STATUSES), *where)
            .values(status="error", error=error, lease_expires_at=None, updated_at=utc_now())
        )

    def steps_of(self, chain_uid: str) -> dict[int, TaskOut]:
        """The tasks of a chain's steps that were opened, by step number."""
        with session_scope(self.database_url) as session:
            rows = session.scalars(select(Task).where(Task.parent_uid == chain_uid))
            return {row.step: TaskOut.model_validate(row) for row in rows if row.step is not None}

    def finish_chain(
        self, uid: str, status: Literal["done", "error"], result_data: dict[str, Any], result_files: list[str], error: str | None
    ) -> TaskOut | None:
        """A chain's one last write (with its task-finished event); None when it had finished already."""
        with session_scope(self.database_url) as session:
            task = session.scalar(
                update(Task)
                .where(Task.uid == uid, Task.status.not_in(FINISHED_STATUSES))
                .values(
                    status=status,
                    result_data=result_data,
                    result_files=result_files,
                    error=error,
                    lease_expires_at=None,
                    updated_at=utc_now(),
                )
                .returning(Task)
            )
            if task is None:
                return None
            if self.outbox:
                self.outbox.add_task_finished(session, task)
            finished = TaskOut.model_validate(task)
        self.dispatch(uid)
        return finished

    def resend_lost_jobs(self, idle_seconds: float, queue_prefix: str, limit: int = 100) -> list[str]:
        """The sweeper's net under a job whose message was lost (deleted by hand, its queue
        purged): a task waiting for a worker (queued, or its lease lapsed) and unchanged for
        ``idle_seconds``, whose job was sent to one of the stack's queues (``queue_prefix``) that
        holds no message at all (none waiting, in flight or delayed, none in its dead letters),
        gets its job again (on its timeline: queued again). A second message of a job is
        harmless: one delivery claims the task, the other finds it taken or finished. Returns
        the uids sent again."""
        if self.outbox is None:
            return []
        outbox = self.outbox
        now = self.leases.clock()
        waiting = (
            select(Task.uid, Task.request_id, OutboxMessage.target)
            .join(OutboxMessage, (OutboxMessage.task_uid == Task.uid) & (OutboxMessage.kind == "job"))
            .where(self.leases.claimable(now), Task.updated_at < now - timedelta(seconds=idle_seconds))
            .group_by(Task.uid, Task.request_id, Task.updated_at, OutboxMessage.target)
            .having(func.count(OutboxMessage.sent_at) == func.count())  # an unsent job is the relay's
        )
        with session_scope(self.database_url) as session:
            targets = session.scalars(select(waiting.subquery().c.target).distinct()).all()
        empty = [target for target in targets if outbox.queue_is_empty(target, queue_prefix)]  # no transaction open meanwhile
        if not empty:
            return []
        with session_scope(self.database_url) as session:
            lost = session.execute(waiting.where(OutboxMessage.target.in_(empty)).order_by(Task.updated_at).limit(limit)).all()
            for uid, request_id, target in lost:
                outbox.add_job(session, uid, target, request_id)
            session.execute(update(Task).where(Task.uid.in_([uid for uid, _request_id, _target in lost])).values(updated_at=now))
        for uid, _request_id, target in lost:
            log.warning("task %s: its job's message is gone (%s holds none); sent again", uid, target.rsplit("/", 1)[-1])
            self.dispatch(uid)
        return [uid for uid, _request_id, _target in lost]

    def unfinished_chains(self, idle_seconds: float, limit: int = 100) -> list[TaskOut]:
        """Chains not finished and not changed for ``idle_seconds`` (oldest first)."""
        cutoff = utc_now() - timedelta(seconds=idle_seconds)
        with session_scope(self.database_url) as session:
            rows = session.scalars(
                select(Task)
                .where(Task.tool == "chain", Task.status.not_in(FINISHED_STATUSES), Task.updated_at < cutoff)
                .order_by(Task.updated_at)
                .limit(limit)
            )
            return [TaskOut.model_validate(row) for row in rows]
