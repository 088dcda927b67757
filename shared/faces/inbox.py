"""The inbox/faces/ upload trigger: anonymize to outputs/faces/, JSON sidecar, one row per object."""

from __future__ import annotations

import logging

from shared.faces.privacy import FaceOptions, FacePrivacy
from shared.faces.settings import FaceSettings
from shared.faces.tables import FaceAnonymization
from shared.faces.video import VIDEO_EXTENSIONS
from shared.faces.video_tasks import FaceVideoTasks
from shared.platform.errors import ServiceUnavailable
from shared.platform.events import ObjectRef
from shared.platform.storage import ObjectStore, StoredObject
from shared.platform.uploads import Processed, UploadHandler

log = logging.getLogger("visionfn.faces.inbox")

INBOX_PREFIX = "inbox/faces/"
OUTPUT_PREFIX = "outputs/faces/"


class FaceInbox(UploadHandler):
    """inbox/faces/<name> -> outputs/faces/<name> (+ <name>.json), one row per object version."""

    settings: FaceSettings  # the domain's own settings (the base holds the platform's)

    prefix = INBOX_PREFIX
    consumer = "face_inbox"

    def __init__(
        self,
        privacy: FacePrivacy,
        store: ObjectStore,
        settings: FaceSettings,
        database_url: str | None = None,
        videos: FaceVideoTasks | None = None,
    ) -> None:
        super().__init__(store, settings, database_url)
        self.privacy = privacy
        self.videos = videos

    def process(self, obj: ObjectRef, stored: StoredObject) -> Processed:
        if obj.key.lower().endswith(VIDEO_EXTENSIONS):
            return self._queue_video(obj, stored)
        report, image = self.privacy.anonymize(stored.data, FaceOptions(hide=self.settings.inbox_hide_option), keep_format=True)
        output_key = OUTPUT_PREFIX + obj.key.removeprefix(INBOX_PREFIX)
        sidecar_key = f"{output_key}.json"
        self.store.put_many(
            [(output_key, image.data, image.content_type), (sidecar_key, report.model_dump_json(indent=2).encode(), "application/json")]
        )
        log.info("%s: %d face(s) anonymized -> %s", obj.key, report.total_count, output_key)
        record = FaceAnonymization(
            object_key=obj.key,
            etag=obj.etag or "",
            output_key=output_key,
            sidecar_key=sidecar_key,
            faces_count=report.total_count,
            detector=report.detector,
            processing_time_ms=report.processing_time_ms,
        )
        return Processed(output_key, lambda session, _processed: session.add(record))

    def _queue_video(self, obj: ObjectRef, stored: StoredObject) -> Processed:
        """A video becomes a face_video task (owner VISIONFN_FACE_VIDEO_INBOX_OWNER); its worker
        writes outputs/faces/<name> (H.264 mp4) and <name>.json."""
        if self.videos is None:
            raise ServiceUnavailable("This function cannot queue videos (no face video service)")
        output_key = OUTPUT_PREFIX + obj.key.removeprefix(INBOX_PREFIX).rsplit(".", 1)[0] + ".mp4"
        task = self.videos.submit_stored(self.settings.face_video_inbox_owner, obj.key, stored.data, output_key)
        log.info("%s: video queued as task %s -> %s", obj.key, task.uid, output_key)
        return Processed(output_key)
