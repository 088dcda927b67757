"""The inbox/defects/ upload trigger: inspect, annotated PNG to outputs/defects/, one record per
object version (the upload lease makes a redelivery do nothing; a unique key backs it up)."""

from __future__ import annotations

import logging

from shared.defects.inspection import printable_name
from shared.defects.records import DefectRecords, NewRecord
from shared.defects.service import DefectInspection, new_record
from shared.defects.settings import DefectSettings
from shared.platform.errors import BadRequest
from shared.platform.events import ObjectRef
from shared.platform.storage import ObjectStore, StoredObject
from shared.platform.uploads import Processed, UploadHandler

log = logging.getLogger("visionfn.defects.inbox")

INBOX_PREFIX = "inbox/defects/"
OUTPUT_PREFIX = "outputs/defects/"
#: Longest owner name (the column's size).
MAX_OWNER_LENGTH = 64
#: S3's limit on an object key.
MAX_KEY_BYTES = 1024


def inbox_owner(key: str, default_owner: str) -> str:
    """``inbox/defects/<owner>/<name...>`` belongs to ``<owner>``; ``inbox/defects/<name>`` to
    ``default_owner``. An owner segment longer than an owner can be is a 400 (the object is dropped)."""
    relative = key.removeprefix(INBOX_PREFIX)
    if "/" not in relative:
        return default_owner
    owner = relative.split("/", 1)[0]
    if not owner or len(owner) > MAX_OWNER_LENGTH or not owner.isprintable():
        raise BadRequest(f"the owner segment of {key!r} must be 1 to {MAX_OWNER_LENGTH} printable characters")
    return owner


def output_key(key: str) -> str:
    """inbox/defects/<relative name> -> outputs/defects/<relative name>.png; 400 (dropped) when that
    would be longer than an object key may be."""
    output = f"{OUTPUT_PREFIX}{key.removeprefix(INBOX_PREFIX)}.png"
    if len(output.encode()) > MAX_KEY_BYTES:
        raise BadRequest(f"the output key for {key!r} would be longer than {MAX_KEY_BYTES} bytes")
    return output


class DefectInbox(UploadHandler):
    """inbox/defects/[<owner>/]<name> -> outputs/defects/[<owner>/]<name>.png and a record of <owner>'s."""

    settings: DefectSettings  # the domain's own settings (the base holds the platform's)

    prefix = INBOX_PREFIX
    consumer = "defect_inbox"

    def __init__(self, inspection: DefectInspection, store: ObjectStore, settings: DefectSettings, database_url: str | None = None) -> None:
        super().__init__(store, settings, database_url)
        self.inspection = inspection

    def wants(self, key: str) -> bool:
        return super().wants(key) and not key.endswith("/")  # a "folder" made by a console is no image

    def process(self, obj: ObjectRef, stored: StoredObject) -> Processed:
        owner = inbox_owner(obj.key, self.settings.defect_inbox_owner)
        key = output_key(obj.key)
        inspected = self.inspection.inspect(stored.data, printable_name(obj.key.rsplit("/", 1)[-1]))
        self.store.put(key, inspected.annotated_png, "image/png")
        record: NewRecord = new_record(inspected, key, source_key=obj.key, source_etag=obj.etag or "")
        log.info(
            "%s: %s (%.2f), %d defect(s) -> %s, owner %s",
            obj.key,
            inspected.inspection.label,
            inspected.inspection.score,
            record.num,
            key,
            owner,
        )
        return Processed(key, lambda session, _processed: DefectRecords.add(session, owner, record))
