"""Large files through the bucket, as AWS users send them: ``POST /api/v1/uploads`` answers an
S3 presigned POST for one key under the caller's own prefix, and an asynchronous route then takes
that key (form field ``<field>_key``) instead of the file part.

A synchronous invocation carries at most 6 MB (Lambda), so a file larger than that can reach a
function only through the bucket. The key names its owner (a digest of the owner, never the owner
itself), so an upload is found only by its owner; what is read is checked when it is used (its
size, its kind), so an object swapped after the upload is judged as it is then. An upload is used
once: it is removed when a task has taken it, and one never used is removed after a day (a
lifecycle rule in template.yaml; the sweeper locally, where LocalStack applies none).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.platform.errors import NotFound, PayloadTooLarge, UnsupportedMediaType
from shared.platform.settings import Settings
from shared.platform.storage import ObjectStore

#: Where presigned uploads land (no bucket notification listens there).
PREFIX = "incoming/"
#: How long a presigned POST may be used.
EXPIRES_SECONDS = 15 * 60
#: An upload never used is removed after this long.
UNUSED_LIFETIME = timedelta(days=1)
#: The form field that names an upload instead of sending the file part ``field``.
KEY_SUFFIX = "_key"

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_KEY = re.compile(r"^incoming/(?P<owner>[0-9a-f]{24})/[0-9a-f]{32}/(?P<name>[A-Za-z0-9._-]{1,100})$")
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,63}$")

#: What each kind of input may be declared as (any other content type is 415 at the upload, and
#: an object whose stored type is not one of its field's is 415 before any decoder runs).
FileKind = Literal["image", "video", "point_cloud"]
ACCEPTED_TYPES: dict[FileKind, tuple[str, ...]] = {
    "image": ("image/",),
    "video": ("video/",),
    "point_cloud": ("application/ply", "model/ply", "text/plain", "application/x-ply"),
}
GENERIC_TYPE = "application/octet-stream"


def owner_prefix(owner: str) -> str:
    """The caller's own prefix: a digest, so keys neither reveal owners nor take their characters."""
    return f"{PREFIX}{hashlib.sha256(owner.encode()).hexdigest()[:24]}/"


def accepted(content_type: str, kind: FileKind | None = None) -> bool:
    """Whether ``content_type`` is one an input (of ``kind``, or of any kind) may have."""
    kinds = [kind] if kind else list(ACCEPTED_TYPES)
    return content_type == GENERIC_TYPE or any(content_type.startswith(accepted_type) for k in kinds for accepted_type in ACCEPTED_TYPES[k])


class UploadRequest(BaseModel):
    """``POST /api/v1/uploads``: the file about to be sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str = Field(min_length=1, max_length=255, description="The file's name (kept, made safe, in the key).")
    content_type: str = Field(
        max_length=128,
        description="Its media type: image/*, video/*, a PLY type or application/octet-stream; the upload must send exactly this.",
    )
    size: int = Field(gt=0, description="Its size in bytes: the upload may send at most this many.")

    @field_validator("content_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.strip().lower()
        if not _CONTENT_TYPE.fullmatch(value) or not accepted(value):
            raise ValueError("must be image/*, video/*, application/ply, model/ply, text/plain or application/octet-stream")
        return value


class UploadTicket(BaseModel):
    """Where and how to send the file: a multipart POST of ``fields`` then ``file`` to ``url``."""

    key: str = Field(description="The object's key: send it as `<field>_key` to an asynchronous route.")
    url: str = Field(description="The bucket's URL to POST the form to.")
    fields: dict[str, str] = Field(description="Form fields to send, in this order, before the file.")
    expires_at: datetime = Field(description="The form is refused after this time.")


@dataclass(frozen=True)
class UploadedFile:
    """A file an asynchronous route takes, sent as a part or through an upload."""

    filename: str | None
    data: bytes


def safe_name(filename: str) -> str:
    """The last path part of ``filename`` in safe characters (no path can be made of it)."""
    name = _SAFE_NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip("._")[-100:]
    return name or "upload"


class DirectUploads:
    """Presigned uploads of one bucket: made for an owner, read back by that owner only."""

    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self.store = store
        self.max_bytes = settings.max_upload_bytes

    def create(self, owner: str, request: UploadRequest, now: datetime | None = None) -> UploadTicket:
        if request.size > self.max_bytes:
            raise PayloadTooLarge(f"size is {request.size} bytes; an upload may be at most {self.max_bytes} bytes")
        key = f"{owner_prefix(owner)}{uuid.uuid4().hex}/{safe_name(request.filename)}"
        post = self.store.client.generate_presigned_post(
            Bucket=self.store.bucket,
            Key=key,
            Fields={"Content-Type": request.content_type},
            Conditions=[{"Content-Type": request.content_type}, ["content-length-range", 1, request.size]],
            ExpiresIn=EXPIRES_SECONDS,
        )
        expires_at = (now or datetime.now(UTC)) + timedelta(seconds=EXPIRES_SECONDS)
        return UploadTicket(key=key, url=post["url"], fields=post["fields"], expires_at=expires_at)

    def read(self, owner: str, key: str, kind: FileKind, limit: int) -> UploadedFile:
        """The upload ``key`` of ``owner``, checked as a file part is: 404 unless it is an upload of
        theirs that exists, 413 over ``limit`` bytes, 415 when stored as another kind of file."""
        match = _KEY.fullmatch(key)
        if not match or not key.startswith(owner_prefix(owner)) or match["name"] in (".", ".."):
            raise NotFound(f"No upload {key[:200]!r} of yours: keys come from POST /api/v1/uploads")
        head = self.store.head(key)
        if head is None:
            raise NotFound(f"Upload {key} was never completed, has expired or was already used: upload it again")
        size, content_type = head
        if size > limit:
            raise PayloadTooLarge(f"Upload {key} is {size} bytes; this field takes at most {limit} bytes")
        if not accepted(content_type, kind):
            raise UnsupportedMediaType(f"Upload {key} is {content_type}; this field takes a {kind.replace('_', ' ')}")
        data = self.store.get(key, max_bytes=limit).data
        return UploadedFile(match["name"], data)

    def remove(self, keys: list[str]) -> None:
        """Uploads a task has taken: used once."""
        for key in keys:
            self.store.delete(key)

    def remove_unused(self, now: datetime | None = None) -> int:
        """Remove uploads older than a day (what template.yaml's lifecycle rule does in the cloud)."""
        cutoff = (now or datetime.now(UTC)) - UNUSED_LIFETIME
        stale = [key for key, modified in self.store.list(PREFIX) if modified < cutoff]
        for key in stale:
            self.store.delete(key)
        return len(stale)


def upload_keys(form: dict[str, Any], fields: tuple[str, ...]) -> dict[str, str]:
    """The ``<field>_key`` values of a submitted form, for the file fields ``fields``."""
    return {field: form[field + KEY_SUFFIX] for field in fields if form.get(field + KEY_SUFFIX)}
