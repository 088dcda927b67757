"""Leases: the one way work is taken, so that it runs once.

A table of work (tasks; object versions an upload handler processes) has ``status``
(``queued -> processing -> done | error``), ``attempts``, ``lease_expires_at`` and
``updated_at``. ``claim`` takes a row for ``lease_seconds`` exactly once (a lapsed lease, its
worker dead, may be taken over); a worker renews its lease while it works (heartbeat); every
write it makes is fenced by its attempt number, so a worker that lost its lease changes nothing.
A redelivery of finished work finds it FINISHED: "already processed" is this, nothing else.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from shared.platform.db.engine import session_scope
from shared.platform.db.models import utc_now
from shared.platform.errors import LeaseLost

FINISHED_STATUSES = ("done", "error")


class Claim(enum.Enum):
    """Why an attempt to take work did not give a lease."""

    BUSY = "busy"  # another worker holds an unexpired lease: try again later
    FINISHED = "finished"  # already done or error: nothing left to do
    MISSING = "missing"  # no such row


@dataclass(frozen=True)
class Lease:
    """A worker's hold on one row. ``attempt`` is the fencing token."""

    key: Any  # the row's primary key (a task's uid, an object version's record id)
    attempt: int


class LeasedTable:
    """Claims, renewals and fenced writes on the rows of one table (``model``, keyed by ``key``)."""

    def __init__(self, model: type, key: Any, database_url: str | None = None) -> None:
        self.model = model
        self.key = key
        self.database_url = database_url

    def claim(self, key: Any, lease_seconds: int) -> Lease | Claim:
        """``queued -> processing`` once; ``processing`` with a lapsed lease is taken over."""
        model, now = self.model, utc_now()
        statement = (
            update(model)
            .where(self.key == key, or_(model.status == "queued", (model.status == "processing") & (model.lease_expires_at < now)))
            .values(status="processing", attempts=model.attempts + 1,
                    lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
            .returning(model.attempts)
        )
        with session_scope(self.database_url) as session:
            attempt = session.scalar(statement)
            if attempt is not None:
                return Lease(key, attempt)
            status = session.scalar(select(model.status).where(self.key == key))
        if status is None:
            return Claim.MISSING
        return Claim.FINISHED if status in FINISHED_STATUSES else Claim.BUSY

    def seconds_left(self, key: Any) -> float:
        """How long the current lease on the row still runs (0 when none)."""
        with session_scope(self.database_url) as session:
            expires = session.scalar(select(self.model.lease_expires_at).where(self.key == key))
        return max(0.0, (expires - utc_now()).total_seconds()) if expires else 0.0

    def renew(self, lease: Lease, lease_seconds: int) -> None:
        """Heartbeat: the lease now ends ``lease_seconds`` from now; LeaseLost if it is gone."""
        self.write(lease, lease_expires_at=utc_now() + timedelta(seconds=lease_seconds))

    def release(self, lease: Lease) -> None:
        """Give the row back (``processing -> queued``) so a retry may claim it at once."""
        self.write(lease, status="queued", lease_expires_at=None)

    def write(self, lease: Lease, then: Callable[[Session, Any], Any] | None = None, **values: Any) -> Any:
        """Set ``values`` while ``lease`` holds the row (LeaseLost otherwise); ``then(session, row)``
        runs in the same transaction and its result is returned (else the row's)."""
        if values.get("status") in FINISHED_STATUSES:
            values["lease_expires_at"] = None
        model = self.model
        statement = (
            update(model)
            .where(self.key == lease.key, model.status == "processing", model.attempts == lease.attempt)
            .values(**values, updated_at=utc_now())
            .returning(model)
        )
        with session_scope(self.database_url) as session:
            row = session.scalar(statement)
            if row is None:
                raise LeaseLost(f"{model.__tablename__} {lease.key}: attempt {lease.attempt} no longer holds it")
            return then(session, row) if then else row
