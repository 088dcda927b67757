"""The skeleton every upload handler shares: prefix check, a lease on the object version, fetch,
fault hook, the handler's work, and the outcome."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shared.platform.batch import Outcome
from shared.platform.db.models import ProcessedObject
from shared.platform.errors import Busy, VisionFnError
from shared.platform.events import ObjectRef
from shared.platform.faults import inject_fault_if_requested
from shared.platform.idempotency import ProcessedObjects
from shared.platform.leases import Claim
from shared.platform.logs import log_context
from shared.platform.metrics import emit_metrics
from shared.platform.settings import Settings
from shared.platform.storage import ObjectStore, StoredObject

log = logging.getLogger("visionfn.uploads")


@dataclass(frozen=True)
class Processed:
    """What a handler made of an object: its output, and what to record with it (same transaction)."""

    output_key: str | None
    record: Callable[[Session, ProcessedObject], Any] | None = None


class UploadHandler(ABC):
    """Handles one created object under ``prefix``; a redelivery of a processed version does nothing."""

    prefix: str
    consumer: str

    def __init__(self, store: ObjectStore, settings: Settings, database_url: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.processed = ProcessedObjects(self.consumer, database_url)

    def handle_upload(self, obj: ObjectRef, receive_count: int) -> Outcome:
        """HANDLED (also when there is nothing left to do), DROPPED when the object itself is at
        fault (not an image, too large, gone), RETRY while another delivery holds it; anything
        else raises and is retried. Measured: how long after its upload the object was taken
        (``upload_lag``) and how long it took (``upload_duration``), per consumer."""
        started = time.time()
        with log_context(object_key=obj.key):
            outcome = self._handle(obj, receive_count)
            lag = (started - obj.created_at.timestamp()) * 1000 if obj.created_at else None
            emit_metrics(
                f"{obj.key}: {outcome.value}",
                {"consumer": self.consumer},
                {
                    "uploads": (1, "Count"),
                    "upload_duration": ((time.time() - started) * 1000, "Milliseconds"),
                    **({"upload_lag": (lag, "Milliseconds")} if lag is not None else {}),
                },
                receive_count=receive_count,
            )
        return outcome

    def _handle(self, obj: ObjectRef, receive_count: int) -> Outcome:
        if not self.wants(obj.key):
            log.info("ignoring %s: not for %s", obj.key, type(self).__name__)
            return Outcome.HANDLED
        lease = self.processed.claim(obj, receive_count, self.settings.task_lease_seconds)
        if lease is Claim.FINISHED:
            log.info("%s (etag %s) already processed; nothing to do", obj.key, obj.etag)
            return Outcome.HANDLED
        if isinstance(lease, Claim):
            raise Busy(f"{obj.key} (etag {obj.etag}) is being processed by another delivery", self.processed.lease_seconds_left(obj))
        log.debug("%s claimed: attempt %d", obj.key, lease.attempt)
        try:
            stored = self.store.get(obj.key)
            inject_fault_if_requested(stored.metadata, receive_count, self.settings)
            processed = self.process(obj, stored)
        except VisionFnError as error:
            if not error.is_client_error:
                self.processed.release(lease)
                raise error.about(obj.key) from error
            log.warning("%s: %s (dropped, not retried)", obj.key, error.detail)
            self.processed.drop(lease, str(error.detail))
            return Outcome.DROPPED
        except Exception:
            self.processed.release(lease)
            raise
        self.processed.finish(lease, processed.output_key, receive_count, processed.record)
        return Outcome.HANDLED

    def wants(self, key: str) -> bool:
        """Whether this handler processes the object at all (by default: everything under prefix)."""
        return key.startswith(self.prefix)

    @abstractmethod
    def process(self, obj: ObjectRef, stored: StoredObject) -> Processed:
        """Write the outputs; say what was made."""
