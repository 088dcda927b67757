"""Thumbnails of uploads: a pure core, and the upload handler that stores and records them."""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from pydantic import Field
from sqlalchemy.orm import Session

from shared.platform.events import ObjectRef
from shared.platform.settings import Settings
from shared.platform.storage import ObjectStore, StoredObject
from shared.platform.tasks import TaskRepository
from shared.platform.uploads import Processed, UploadHandler
from shared.vision.images import EncodedImage, decode_image, encode_image

log = logging.getLogger("visionfn.thumbnails")


class ThumbnailSettings(Settings):
    """What the thumbnail function reads: the platform's settings and the thumbnails' size."""

    thumbnail_max_side: int = Field(256, ge=16, le=4096, description="Longest side of a thumbnail, px.")


@lru_cache(maxsize=1)
def get_thumbnail_settings() -> ThumbnailSettings:
    return ThumbnailSettings()


UPLOADS_PREFIX = "uploads/"
THUMBNAILS_PREFIX = "thumbnails/"
#: Uploads that are not pictures (surface-matching point clouds): no thumbnail.
NOT_PICTURES = (".ply",)
_TASK_UPLOAD = re.compile(r"^uploads/(?P<uid>[0-9a-f]{32})/")


def make_thumbnail(data: bytes, max_side: int, max_pixels: int) -> EncodedImage:
    """A copy no larger than ``max_side`` on either side, in the source's own format."""
    decoded = decode_image(data, max_pixels)
    thumbnail = decoded.pixels.copy()
    thumbnail.thumbnail((max_side, max_side))
    return encode_image(thumbnail, decoded.format)


def thumbnail_key(upload_key: str) -> str:
    """``uploads/<path>`` -> ``thumbnails/<path>`` (same relative path)."""
    if not upload_key.startswith(UPLOADS_PREFIX):
        raise ValueError(f"not an upload key: {upload_key!r}")
    return THUMBNAILS_PREFIX + upload_key.removeprefix(UPLOADS_PREFIX)


def task_uid_of(upload_key: str) -> str | None:
    """The task an upload belongs to (``uploads/<uid>/...``), if any."""
    match = _TASK_UPLOAD.match(upload_key)
    return match["uid"] if match else None


class ThumbnailWriter(UploadHandler):
    """uploads/<path> -> thumbnails/<path>, recorded on the task the upload belongs to."""

    settings: ThumbnailSettings  # the domain's own settings (the base holds the platform's)

    prefix = UPLOADS_PREFIX
    consumer = "thumbnail"

    def __init__(self, store: ObjectStore, tasks: TaskRepository, settings: ThumbnailSettings, database_url: str | None = None) -> None:
        super().__init__(store, settings, database_url)
        self.tasks = tasks

    def wants(self, key: str) -> bool:
        return super().wants(key) and not key.lower().endswith(NOT_PICTURES)

    def process(self, obj: ObjectRef, stored: StoredObject) -> Processed:
        thumbnail = make_thumbnail(stored.data, self.settings.thumbnail_max_side, self.settings.max_image_pixels)
        output_key = thumbnail_key(obj.key)
        self.store.put(output_key, thumbnail.data, thumbnail.content_type)
        log.info("thumbnail %s (%dx%d) written", output_key, thumbnail.width, thumbnail.height)
        uid = task_uid_of(obj.key)
        if uid is None:
            return Processed(output_key)
        return Processed(output_key, lambda session, _processed: self._record(session, uid, output_key))

    def _record(self, session: Session, uid: str, key: str) -> None:
        """On the task the upload belongs to, in the transaction that marks the upload done."""
        if not self.tasks.add_thumbnail(uid, key, session):
            log.info("thumbnail %s written; no task %s to record it on", key, uid)
