"""The object versions an upload handler works on, each taken with a lease (shared/platform/leases.py),
so that a redelivered notification does no work twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.platform.db.engine import dialect_insert, session_scope
from shared.platform.db.models import ProcessedObject
from shared.platform.events import ObjectRef
from shared.platform.leases import Claim, Lease, LeasedTable


class ProcessedObjects:
    def __init__(self, consumer: str, database_url: str | None = None) -> None:
        self.consumer = consumer
        self.database_url = database_url
        self.leases = LeasedTable(ProcessedObject, ProcessedObject.id, database_url)

    def claim(self, obj: ObjectRef, receive_count: int, lease_seconds: int) -> Lease | Claim:
        """Take this object version for work (once; FINISHED when it was done already): its row is
        made if new and claimed, in one transaction."""
        identity = {"consumer": self.consumer, "object_key": obj.key, "etag": obj.etag or ""}
        with session_scope(self.database_url) as session:
            record = session.scalar(
                dialect_insert(session, ProcessedObject)
                .values(**identity, status="queued", attempts=0, receive_count=receive_count)
                .on_conflict_do_nothing(index_elements=["consumer", "object_key", "etag"])
                .returning(ProcessedObject.id)
            )
            if record is None:  # seen before
                record = session.scalar(select(ProcessedObject.id).filter_by(**identity))
            return self.leases.claim(record, lease_seconds, delivery=receive_count, session=session)

    def lease_seconds_left(self, obj: ObjectRef) -> float:
        """How long another delivery's lease on this object version still runs."""
        with session_scope(self.database_url) as session:
            record = session.scalar(select(ProcessedObject.id).filter_by(consumer=self.consumer, object_key=obj.key, etag=obj.etag or ""))
        return self.leases.seconds_left(record) if record is not None else 0.0

    def finish(
        self, lease: Lease, output_key: str | None, receive_count: int, then: Callable[[Session, ProcessedObject], Any] | None = None
    ) -> None:
        """Done (fenced); ``then`` writes what goes with it, in the same transaction."""
        self.leases.write(lease, then, status="done", output_key=output_key, receive_count=receive_count)

    def drop(self, lease: Lease, reason: str) -> None:
        """The object can never be processed (not an image, gone): recorded, not retried."""
        self.leases.write(lease, status="error", error=reason)

    def release(self, lease: Lease) -> None:
        self.leases.release(lease)

    def entries(self, key: str) -> list[ProcessedObject]:
        with session_scope(self.database_url) as session:
            return list(session.scalars(select(ProcessedObject).filter_by(consumer=self.consumer, object_key=key)))
