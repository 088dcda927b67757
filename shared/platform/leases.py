"""Leases: the one way work is taken, so that it runs once.

A table of work (tasks; object versions an upload handler processes; webhook deliveries) has
``status``, ``attempts``, ``lease_expires_at`` and ``updated_at``; its ``Statuses`` name the three
kinds of status (tasks: ``queued -> processing -> done | error``). ``claim`` takes a waiting row
for ``lease_seconds`` exactly once (a lapsed lease, its worker dead, may be taken over); a worker
renews its lease while it works (heartbeat); every write it makes is fenced by its attempt number,
so a worker that lost its lease changes nothing. A redelivery of finished work finds it FINISHED:
"already processed" is this, nothing else.

Work that waits for its time (a webhook delivery's next retry) names the column that says when
(``due``): a waiting row is claimed only once that time has come, and ``claim_batch`` takes the
due rows of a scheduled run. Times come from the table's clock, which tests may set.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from shared.platform.db.engine import session_scope, within
from shared.platform.db.models import utc_now
from shared.platform.errors import LeaseLost

FINISHED_STATUSES = ("done", "error")


class Claim(enum.Enum):
    """Why an attempt to take work did not give a lease."""

    BUSY = "busy"  # another worker holds an unexpired lease (or the row's time has not come): try again later
    FINISHED = "finished"  # already finished: nothing left to do
    MISSING = "missing"  # no such row


@dataclass(frozen=True)
class Lease:
    """A worker's hold on one row. ``attempt`` is the fencing token."""

    key: Any  # the row's primary key (a task's uid, an object version's record id, a delivery's id)
    attempt: int
    taken_at: float = field(default_factory=time.time, compare=False)  # when this worker took it (epoch seconds)


@dataclass(frozen=True)
class Statuses:
    """A leased table's statuses: a row ``waiting`` is claimed into ``working`` (the lease) and
    ends in one of ``finished``; a release puts it back to ``waiting``."""

    waiting: str = "queued"
    working: str = "processing"
    finished: tuple[str, ...] = FINISHED_STATUSES


#: Tasks' and processed objects' statuses.
QUEUED_WORK = Statuses()


class LeasedTable:
    """Claims, renewals and fenced writes on the rows of one table (``model``, keyed by ``key``).

    ``due``: a column of ``model``; a waiting row is claimed only once ``due <= now`` (None: at
    once). ``clock``: what "now" is. Each operation runs in its own transaction, or in ``session``
    when the caller's transaction must hold more (a row read under lock first, a row inserted
    just before)."""

    def __init__(
        self,
        model: Any,
        key: Any,
        database_url: str | None = None,
        *,
        statuses: Statuses = QUEUED_WORK,
        due: Any = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.model = model
        self.key = key
        self.database_url = database_url
        self.statuses = statuses
        self.due = due
        self.clock = clock

    def claim(
        self, key: Any, lease_seconds: float, *, reopen: bool = False, session: Session | None = None, delivery: int | None = None
    ) -> Lease | Claim:
        """``waiting -> working`` once; ``working`` with a lapsed lease is taken over. ``reopen``: a
        finished row (or a waiting one whose time has not come) is taken too: someone asked for
        the work again (a client's redelivery). ``delivery``: the receive count of the queue
        message this claim serves (tables with ``lease_delivery``): a lease held for an earlier
        delivery of the message is taken over at once, lapsed or not. SQS delivers a message again
        only when its earlier delivery is over (the queue hides it longer than its consumer may run,
        and a live worker keeps it hidden), or when the platform saw that worker die."""
        model, now = self.model, self.clock()
        statement = (
            update(model)
            .where(self.key == key, self.claimable(now, reopen, delivery))
            .values(**self._taken(now, lease_seconds, delivery))
            .returning(model.attempts)
        )
        with within(session, self.database_url) as transaction:
            attempt = transaction.scalar(statement)
            if attempt is not None:
                return Lease(key, attempt)
            status = transaction.scalar(select(model.status).where(self.key == key))
        if status is None:
            return Claim.MISSING
        return Claim.FINISHED if status in self.statuses.finished else Claim.BUSY

    def claim_batch(
        self,
        limit: int,
        lease_seconds: float,
        *,
        where: Sequence[ColumnElement[bool]] = (),
        order_by: Any = None,
        session: Session | None = None,
    ) -> list[Lease]:
        """Up to ``limit`` claimable rows (``where`` narrows them; oldest ``order_by`` first), each
        claimed as ``claim`` does: rows another claimer is taking now are skipped, not waited for."""
        model, now = self.model, self.clock()
        chosen = (
            select(self.key)
            .where(self.claimable(now), *where)
            .order_by(order_by if order_by is not None else self.key)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(model)
            .where(self.key.in_(chosen), self.claimable(now))
            .values(**self._taken(now, lease_seconds))
            .returning(self.key, model.attempts)
            .execution_options(synchronize_session=False)
        )
        with within(session, self.database_url) as transaction:
            return [Lease(key, attempt) for key, attempt in transaction.execute(statement)]

    def seconds_left(self, key: Any) -> float:
        """How long the current lease on the row still runs (0 when none)."""
        with session_scope(self.database_url) as session:
            expires = session.scalar(select(self.model.lease_expires_at).where(self.key == key))
        return max(0.0, (_aware(expires) - self.clock()).total_seconds()) if expires else 0.0

    def renew(self, lease: Lease, lease_seconds: float, **values: Any) -> None:
        """Heartbeat: the lease now ends ``lease_seconds`` from now (and the row takes ``values``,
        its progress, in the same write); LeaseLost if it is gone."""
        self.write(lease, lease_expires_at=self.clock() + timedelta(seconds=lease_seconds), **values)

    def release(self, lease: Lease) -> None:
        """Give the row back (``working -> waiting``) so a retry may claim it at once."""
        self.write(lease, status=self.statuses.waiting, lease_expires_at=None)

    def write(
        self,
        lease: Lease,
        then: Callable[[Session, Any], Any] | None = None,
        *,
        session: Session | None = None,
        **values: Any,
    ) -> Any:
        """Set ``values`` while ``lease`` holds the row (LeaseLost otherwise); ``then(session, row)``
        runs in the same transaction and its result is returned (else the row's). A row whose
        status leaves ``working`` is held by no one afterwards."""
        if values.get("status", self.statuses.working) != self.statuses.working:
            values["lease_expires_at"] = None
        model = self.model
        statement: Any = (
            update(model)
            .where(self.key == lease.key, model.status == self.statuses.working, model.attempts == lease.attempt)
            .values(**values, updated_at=self.clock())
            .returning(model)
        )
        with within(session, self.database_url) as transaction:
            row = transaction.scalar(statement)
            if row is None:
                raise LeaseLost(f"{model.__tablename__} {lease.key}: attempt {lease.attempt} no longer holds it")
            return then(transaction, row) if then else row

    def claimable(self, now: datetime, reopen: bool = False, delivery: int | None = None) -> ColumnElement[bool]:
        """Waiting (and due), or working under a lapsed lease (or one held for an earlier delivery);
        with ``reopen``, any row not held."""
        model, statuses = self.model, self.statuses
        lapsed = (model.status == statuses.working) & (model.lease_expires_at < now)
        if delivery is not None:
            lapsed = lapsed | ((model.status == statuses.working) & (model.lease_delivery < delivery))
        if reopen:
            return or_(model.status.in_((statuses.waiting, *statuses.finished)), lapsed)
        waiting = model.status == statuses.waiting
        if self.due is not None:
            waiting = waiting & (self.due <= now)
        return or_(waiting, lapsed)

    def _taken(self, now: datetime, lease_seconds: float, delivery: int | None = None) -> dict[str, Any]:
        model = self.model
        return {
            "status": self.statuses.working,
            "attempts": model.attempts + 1,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "updated_at": now,
            **({"lease_delivery": delivery} if delivery is not None else {}),
        }


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; every time here is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
