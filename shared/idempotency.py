"""Which object versions an upload handler already finished (so a redelivery does no work twice)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared.db.engine import session_scope
from shared.db.models import ProcessedObject
from shared.events import ObjectRef


class ProcessedObjectLog:
    def __init__(self, consumer: str, database_url: str | None = None) -> None:
        self.consumer = consumer
        self.database_url = database_url

    def is_done(self, obj: ObjectRef) -> bool:
        with session_scope(self.database_url) as session:
            return session.scalar(self._query(obj)) is not None

    def mark_done(self, obj: ObjectRef, output_key: str | None, receive_count: int) -> bool:
        """Record the object version as finished; False when another delivery recorded it first."""
        try:
            with session_scope(self.database_url) as session:
                session.add(
                    ProcessedObject(
                        consumer=self.consumer,
                        object_key=obj.key,
                        etag=obj.etag or "",
                        output_key=output_key,
                        receive_count=receive_count,
                    )
                )
        except IntegrityError:
            return False
        return True

    def entries(self, key: str) -> list[ProcessedObject]:
        with session_scope(self.database_url) as session:
            rows = session.scalars(
                select(ProcessedObject).where(
                    ProcessedObject.consumer == self.consumer, ProcessedObject.object_key == key
                )
            )
            return list(rows)

    def _query(self, obj: ObjectRef):  # noqa: ANN202 (SQLAlchemy select)
        return select(ProcessedObject.id).where(
            ProcessedObject.consumer == self.consumer,
            ProcessedObject.object_key == obj.key,
            ProcessedObject.etag == (obj.etag or ""),
        )
