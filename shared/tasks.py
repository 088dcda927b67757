"""Task repository: create, read, claim atomically, finish. Callers never see ORM objects."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select, update

from shared.db.engine import session_scope
from shared.db.models import Task, utc_now
from shared.errors import TaskNotFound

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


class TaskPage(BaseModel):
    total: int
    tasks: list[TaskOut]


class Claim(enum.Enum):
    """What a worker's attempt to take a task found."""

    CLAIMED = "claimed"  # it is ours now: queued -> processing
    BUSY = "busy"  # another worker holds an unexpired lease: try again later
    FINISHED = "finished"  # already done or error: nothing left to do
    MISSING = "missing"  # no such task


class TaskListQuery(BaseModel):
    """Query string of GET /api/v1/tasks."""

    model_config = ConfigDict(extra="ignore")

    offset: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=200)


class TaskRepository:
    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url

    def create(self, tool: str, params: dict[str, Any], input_files: list[str], uid: str | None = None) -> TaskOut:
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
            session.flush()
            return TaskOut.model_validate(task)

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

    def claim(self, uid: str, lease_seconds: int) -> Claim:
        """``queued -> processing`` exactly once; a lapsed lease (a worker died) may be reclaimed."""
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
        )
        with session_scope(self.database_url) as session:
            if session.execute(statement).rowcount == 1:
                return Claim.CLAIMED
            status = session.scalar(select(Task.status).where(Task.uid == uid))
        if status is None:
            return Claim.MISSING
        return Claim.FINISHED if status in ("done", "error") else Claim.BUSY

    def release(self, uid: str) -> None:
        """Give a claimed task back (``processing -> queued``) so a retry may claim it at once."""
        statement = (
            update(Task)
            .where(Task.uid == uid, Task.status == "processing")
            .values(status="queued", lease_expires_at=None, updated_at=utc_now())
        )
        with session_scope(self.database_url) as session:
            session.execute(statement)

    def complete(self, uid: str, result_data: dict[str, Any], result_files: list[str]) -> TaskOut:
        return self._finish(uid, status="done", result_data=result_data, result_files=result_files, error=None)

    def fail(self, uid: str, error: str) -> TaskOut:
        return self._finish(uid, status="error", result_data=None, result_files=[], error=error)

    def _finish(self, uid: str, **values: Any) -> TaskOut:
        with session_scope(self.database_url) as session:
            task = session.get(Task, uid, with_for_update=True)
            if task is None:
                raise TaskNotFound(uid)
            for name, value in values.items():
                setattr(task, name, value)
            task.lease_expires_at = None
            task.updated_at = utc_now()
            session.flush()
            return TaskOut.model_validate(task)

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
