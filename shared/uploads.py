"""The skeleton every upload handler shares: prefix check, once-per-version, fetch, fault hook."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

from shared.batch import Outcome
from shared.errors import VisionFnError
from shared.events import ObjectRef
from shared.faults import inject_fault_if_requested
from shared.settings import Settings
from shared.storage import ObjectStore, StoredObject

log = logging.getLogger("visionfn.uploads")


class UploadHandler(ABC):
    """Handles one created object under ``prefix``; safe to call again for the same object."""

    prefix: str

    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def handle_upload(self, obj: ObjectRef, receive_count: int) -> Outcome:
        """HANDLED (also when there is nothing to do), DROPPED when the object itself is at fault
        (not an image, too large, gone), RETRY is left to the caller: anything else raises."""
        if not self.wants(obj.key):
            log.info("ignoring %s: not for %s", obj.key, type(self).__name__)
            return Outcome.HANDLED
        if self.already_done(obj):
            log.info("%s (etag %s) already processed; nothing to do", obj.key, obj.etag)
            return Outcome.HANDLED
        try:
            stored = self.store.get(obj.key)
            inject_fault_if_requested(stored.metadata, receive_count, self.settings)
            self.process(obj, stored, receive_count)
        except VisionFnError as error:
            if not error.is_client_error:
                raise
            log.warning("%s: %s (dropped, not retried)", obj.key, error.detail)
            return Outcome.DROPPED
        return Outcome.HANDLED

    def wants(self, key: str) -> bool:
        """Whether this handler processes the object at all (by default: everything under prefix)."""
        return key.startswith(self.prefix)

    @abstractmethod
    def already_done(self, obj: ObjectRef) -> bool: ...

    @abstractmethod
    def process(self, obj: ObjectRef, stored: StoredObject, receive_count: int) -> None:
        """Write the outputs, then record the object version as done (last)."""
