"""Task repository: create, read, claim atomically, finish. Callers never see ORM objects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared.db.engine import session_scope
from shared.db.models import Task, utc_now
from shared.errors import TaskNotFound
from shared.leases import Claim, Lease, LeasedTable
from shared.messaging import Outbox

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


class TaskPage(BaseModel):
    total: int
    tasks: list[TaskOut]


class TaskListQuery(BaseModel):
    """Query string of GET /api/v1/tasks."""

    model_config = ConfigDict(extra="ignore")

    offset: int = Field(0, ge=0, le=1_000_000_000)
    limit: int = Field(50, ge=1, le=200)


class TaskRepository:
    """Tasks and the messages their changes send. With an ``outbox``, a task created with a
    ``job_queue`` gets its job in the same transaction, and a task that finishes gets its
    task-finished event in the transaction that finishes it; without one (read-only callers,
    tests of the table), no messages are written."""

    def __init__(self, database_url: str | None = None, outbox: Outbox | None = None) -> None:
        self.database_url = database_url
        self.outbox = outbox
        self.leases = LeasedTable(Task, Task.uid, database_url)

    def create(
        self, tool: str, params: dict[str, Any], input_files: list[str], uid: str | None = None,
        job_queue: str | None = None, owner: str = "",
    ) -> TaskOut:
        """A ``queued`` task and, with ``job_queue``, its job: both or neither. The job is sent by
        ``dispatch`` once the inputs are stored (or by the sweeper if this process dies first)."""
        now = utc_now()
        task = Task(
            uid=uid or uuid.uuid4().hex,
            owner=owner,
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

    def get(self, uid: str, owner: str | None = None) -> TaskOut:
        """The task; with ``owner``, only if it is theirs (another owner's task is "not found")."""
        with session_scope(self.database_url) as session:
            task = session.get(Task, uid)
            if task is None or (owner is not None and task.owner != owner):
                raise TaskNotFound(uid)
            return TaskOut.model_validate(task)

    def page(self, offset: int, limit: int, owner: str | None = None) -> TaskPage:
        """Newest first; with ``owner``, that owner's tasks only."""
        mine = [Task.owner == owner] if owner is not None else []
        with session_scope(self.database_url) as session:
            total = session.scalar(select(func.count()).select_from(Task).where(*mine)) or 0
            rows = session.scalars(
                select(Task).where(*mine).order_by(Task.created_at.desc(), Task.uid.desc()).offset(offset).limit(limit)
            )
            return TaskPage(total=total, tasks=[TaskOut.model_validate(row) for row in rows])

    def claim(self, uid: str, lease_seconds: int) -> Lease | Claim:
        """``queued -> processing`` exactly once; a lapsed lease (its worker died) may be reclaimed."""
        return self.leases.claim(uid, lease_seconds)

    def lease_seconds_left(self, uid: str) -> float:
        return self.leases.seconds_left(uid)

    def renew(self, lease: Lease, lease_seconds: int) -> None:
        self.leases.renew(lease, lease_seconds)

    def release(self, lease: Lease) -> None:
        self.leases.release(lease)

    def complete(self, lease: Lease, result_data: dict[str, Any], result_files: list[str]) -> TaskOut:
        return self._finish(lease, status="done", result_data=result_data, result_files=result_files, error=None)

    def fail(self, lease: Lease, error: str) -> TaskOut:
        return self._finish(lease, status="error", result_data=None, result_files=[], error=error)

    def _finish(self, lease: Lease, **values: Any) -> TaskOut:
        """The fenced last write, with the task-finished event in the same transaction."""

        def announce(session: Session, task: Task) -> TaskOut:
            if self.outbox:
                self.outbox.add_task_finished(session, task)
            return TaskOut.model_validate(task)

        finished = self.leases.write(lease, announce, **values)
        self.dispatch(lease.key)
        return finished

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
