"""Task repository: create, read, claim atomically, finish. Callers never see ORM objects."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select, update

from shared.db.engine import session_scope
from shared.db.models import Task, utc_now
from shared.errors import LeaseLost, TaskNotFound
from shared.messaging import Outbox

TaskStatus = Literal["queued", "processing", "done", "error"]


class TaskOut(BaseModel):
    """A task as clients see it."""

    model_config = ConfigDict(from_attributes=True)

    uid: str
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


class TaskPage(BaseModel):
    total: int
    tasks: list[TaskOut]


class Claim(enum.Enum):
    """Why a worker's attempt to take a task did not give it a lease."""

    BUSY = "busy"  # another worker holds an unexpired lease: try again later
    FINISHED = "finished"  # already done or error: nothing left to do
    MISSING = "missing"  # no such task


@dataclass(frozen=True)
class Lease:
    """A worker's hold on a task. ``attempt`` is the fencing token: every write the worker makes
    is conditional on the task still being ``processing`` under this attempt, so a worker that
    lost its lease (it stalled, another took over) can never overwrite the task."""

    uid: str
    attempt: int


class TaskListQuery(BaseModel):
    """Query string of GET /api/v1/tasks."""

    model_config = ConfigDict(extra="ignore")

    offset: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=200)


class TaskRepository:
    """Tasks and the messages their changes send. With an ``outbox``, a task created with a
    ``job_queue`` gets its job in the same transaction, and a task that finishes gets its
    task-finished event in the transaction that finishes it; without one (read-only callers,
    tests of the table), no messages are written."""

    def __init__(self, database_url: str | None = None, outbox: Outbox | None = None) -> None:
        self.database_url = database_url
        self.outbox = outbox

    def create(
        self, tool: str, params: dict[str, Any], input_files: list[str], uid: str | None = None,
        job_queue: str | None = None,
    ) -> TaskOut:
        """A ``queued`` task and, with ``job_queue``, its job: both or neither. The job is sent by
        ``dispatch`` once the inputs are stored (or by the sweeper if this process dies first)."""
        now = utc_now()
        task = Task(
            uid=uid or uuid.uuid4().hex,
            tool=tool,
            status="queued",
            params=params,
            input_files=input_files,
            thumbnails=[],
            result_files=[],
            result_data=None,
            error=None,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        with session_scope(self.database_url) as session:
            session.add(task)
            if job_queue and self.outbox:
                self.outbox.add_job(session, task.uid, job_queue)
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
                update(Task).where(Task.uid == uid, Task.status == "queued")
                .values(status="error", error=error, updated_at=utc_now()).returning(Task)
            )
            if task is None:
                raise TaskNotFound(uid)
            if self.outbox:
                self.outbox.cancel_jobs(session, uid)
                self.outbox.add_task_finished(session, task)
            result = TaskOut.model_validate(task)
        self.dispatch(uid)
        return result

    def get(self, uid: str) -> TaskOut:
        with session_scope(self.database_url) as session:
            task = session.get(Task, uid)
            if task is None:
                raise TaskNotFound(uid)
            return TaskOut.model_validate(task)

    def page(self, offset: int, limit: int) -> TaskPage:
        with session_scope(self.database_url) as session:
            total = session.scalar(select(func.count()).select_from(Task)) or 0
            rows = session.scalars(
                select(Task).order_by(Task.created_at.desc(), Task.uid.desc()).offset(offset).limit(limit)
            )
            return TaskPage(total=total, tasks=[TaskOut.model_validate(row) for row in rows])

    def claim(self, uid: str, lease_seconds: int) -> Lease | Claim:
        """``queued -> processing`` exactly once; a lapsed lease (its worker died) may be reclaimed."""
        now = utc_now()
        statement = (
            update(Task)
            .where(
                Task.uid == uid,
                or_(
                    Task.status == "queued",
                    (Task.status == "processing") & (Task.lease_expires_at < now),
                ),
            )
            .values(
                status="processing",
                attempts=Task.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
            .returning(Task.attempts)
        )
        with session_scope(self.database_url) as session:
            attempt = session.scalar(statement)
            if attempt is not None:
                return Lease(uid, attempt)
            status = session.scalar(select(Task.status).where(Task.uid == uid))
        if status is None:
            return Claim.MISSING
        return Claim.FINISHED if status in ("done", "error") else Claim.BUSY

    def renew(self, lease: Lease, lease_seconds: int) -> None:
        """Heartbeat: push the lease's expiry ``lease_seconds`` from now; LeaseLost if it is gone."""
        self._fenced(lease, lease_expires_at=utc_now() + timedelta(seconds=lease_seconds))

    def release(self, lease: Lease) -> None:
        """Give a claimed task back (``processing -> queued``) so a retry may claim it at once."""
        self._fenced(lease, status="queued", lease_expires_at=None)

    def complete(self, lease: Lease, result_data: dict[str, Any], result_files: list[str]) -> TaskOut:
        return self._fenced(lease, status="done", result_data=result_data, result_files=result_files, error=None,
                            lease_expires_at=None)

    def fail(self, lease: Lease, error: str) -> TaskOut:
        return self._fenced(lease, status="error", result_data=None, result_files=[], error=error,
                            lease_expires_at=None)

    def _fenced(self, lease: Lease, **values: Any) -> TaskOut:
        """Write ``values`` only while ``lease`` still holds the task; LeaseLost otherwise."""
        statement = (
            update(Task)
            .where(Task.uid == lease.uid, Task.status == "processing", Task.attempts == lease.attempt)
            .values(**values, updated_at=utc_now())
            .returning(Task)
        )
        with session_scope(self.database_url) as session:
            task = session.scalar(statement)
            if task is None:
                raise LeaseLost(f"Task {lease.uid}: attempt {lease.attempt} no longer holds it")
            finished = task.status in ("done", "error")
            if finished and self.outbox:
                self.outbox.add_task_finished(session, task)
            result = TaskOut.model_validate(task)
        if finished:
            self.dispatch(lease.uid)
        return result

    def add_thumbnail(self, uid: str, key: str) -> bool:
        """Record a thumbnail on its task once; False when no task has that uid."""
        with session_scope(self.database_url) as session:
            task = session.get(Task, uid, with_for_update=True)
            if task is None:
                return False
            if key not in task.thumbnails:
                task.thumbnails = [*task.thumbnails, key]
                task.updated_at = utc_now()
            return True
