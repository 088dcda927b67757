"""The inbox/faces/ upload trigger: anonymize to outputs/faces/, JSON sidecar, one row per object."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared.db.engine import session_scope
from shared.db.models import FaceAnonymization
from shared.events import ObjectRef
from shared.faces.privacy import FaceOptions, FacePrivacy
from shared.settings import Settings
from shared.storage import ObjectStore, StoredObject
from shared.uploads import UploadHandler

log = logging.getLogger("visionfn.faces.inbox")

INBOX_PREFIX = "inbox/faces/"
OUTPUT_PREFIX = "outputs/faces/"


class FaceRecords:
    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url

    def find(self, object_key: str, etag: str) -> FaceAnonymization | None:
        with session_scope(self.database_url) as session:
            return session.scalar(
                select(FaceAnonymization).where(
                    FaceAnonymization.object_key == object_key, FaceAnonymization.etag == etag
                )
            )

    def add(self, record: FaceAnonymization) -> bool:
        """False when this object version was already recorded (by a concurrent delivery)."""
        try:
            with session_scope(self.database_url) as session:
                session.add(record)
        except IntegrityError:
            return False
        return True


class FaceInbox(UploadHandler):
    """inbox/faces/<name> -> outputs/faces/<name> (+ <name>.json), one row per object version."""

    prefix = INBOX_PREFIX

    def __init__(self, privacy: FacePrivacy, store: ObjectStore, records: FaceRecords, settings: Settings) -> None:
        super().__init__(store, settings)
        self.privacy = privacy
        self.records = records

    def already_done(self, obj: ObjectRef) -> bool:
        return self.records.find(obj.key, obj.etag or "") is not None

    def process(self, obj: ObjectRef, stored: StoredObject, receive_count: int) -> None:
        report, image = self.privacy.anonymize(stored.data, FaceOptions(), keep_format=True)
        output_key = OUTPUT_PREFIX + obj.key.removeprefix(INBOX_PREFIX)
        sidecar_key = f"{output_key}.json"
        self.store.put(output_key, image.data, image.content_type)
        self.store.put(sidecar_key, report.model_dump_json(indent=2).encode(), "application/json")
        self.records.add(
            FaceAnonymization(
                object_key=obj.key,
                etag=obj.etag or "",
                output_key=output_key,
                sidecar_key=sidecar_key,
                faces_count=report.total_count,
                detector=report.detector,
                processing_time_ms=report.processing_time_ms,
            )
        )
        log.info("%s: %d face(s) anonymized -> %s", obj.key, report.total_count, output_key)
