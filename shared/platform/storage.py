"""Object-store adapter over boto3 (LocalStack, AWS S3, MinIO or GCS interoperability)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.platform.errors import NotFound, ObjectNotFound, PayloadTooLarge
from shared.platform.settings import Settings, get_settings


@dataclass(frozen=True)
class StoredObject:
    key: str
    data: bytes
    content_type: str | None
    metadata: dict[str, str]
    etag: str | None


def aws_client(service: str, settings: Settings | None = None) -> Any:
    """A boto3 client honouring the configured endpoint (path-style S3 addressing there)."""
    settings = settings or get_settings()
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if settings.aws_endpoint_url else None,
    )
    return boto3.client(
        service,
        endpoint_url=settings.aws_endpoint_url,
        region_name=settings.aws_region,
        config=config,
    )


class ObjectStore:
    """Put, get and share objects of the one bucket."""

    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, Metadata=metadata or {})

    def get(self, key: str, max_bytes: int | None = None) -> StoredObject:
        """The object; with ``max_bytes``, at most that many bytes are read (413 beyond: it may
        have been replaced by a larger one since it was measured)."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _missing(error):
                raise ObjectNotFound(key) from error
            raise
        data = response["Body"].read() if max_bytes is None else response["Body"].read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:
            response["Body"].close()
            raise PayloadTooLarge(f"Object {key} is over the limit of {max_bytes} bytes")
        return StoredObject(
            key=key,
            data=data,
            content_type=response.get("ContentType"),
            metadata=response.get("Metadata", {}),
            etag=response.get("ETag", "").strip('"') or None,
        )

    def put_many(self, items: list[tuple[str, bytes, str]]) -> None:
        """Put ``(key, data, content_type)`` objects concurrently (one round trip of latency)."""
        with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
            list(pool.map(lambda item: self.put(*item), items))

    def get_many(self, keys: list[str]) -> list[StoredObject]:
        """Get objects concurrently, in the order of ``keys``."""
        with ThreadPoolExecutor(max_workers=max(1, len(keys))) as pool:
            return list(pool.map(self.get, keys))

    def head(self, key: str) -> tuple[int, str] | None:
        """``(size, content type)`` of the object, or None when there is none."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _missing(error):
                return None
            raise
        return int(response["ContentLength"]), (response.get("ContentType") or "application/octet-stream").lower()

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def list(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """``(key, last modified)`` of every object under ``prefix``."""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], item["LastModified"]

    def presigned_download(self, key: str, filename: str, content_type: str, expires_seconds: int) -> str:
        """A short-lived GET of ``key`` that S3 serves as an attachment of ``content_type``
        (S3's ``response-*`` overrides: the stored type and disposition count for nothing)."""
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_seconds,
        )

    def check(self) -> None:
        """Raise if the bucket cannot be reached (health)."""
        self.client.head_bucket(Bucket=self.bucket)


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}


#: Prefixes of a task's files (``<prefix><uid>/<name>``): what a client may download of its own tasks.
TASK_FILE_PREFIXES = ("uploads/", "thumbnails/", "results/")
_TASK_FILE = re.compile(r"^(?:uploads|thumbnails|results)/(?P<uid>[0-9a-f]{32})/(?:step-[1-9][0-9]?/)?[^/]+$")  # a chain's steps: step-<n>/


def task_of_file(key: str) -> str:
    """The task a downloadable key belongs to; 404 for any other key (no paths, no other prefixes)."""
    match = _TASK_FILE.match(key)
    if not match or any(part in ("", ".", "..") for part in key.split("/")):
        downloadable = ", ".join(prefix + "<task uid>/<name>" for prefix in TASK_FILE_PREFIXES)
        raise NotFound(f"Object not found: {key} (downloadable: {downloadable}, results/<chain uid>/step-<n>/<name>)")
    return match["uid"]


@lru_cache(maxsize=1)
def get_object_store() -> ObjectStore:
    """The process-wide store (one boto3 client per process)."""
    settings = get_settings()
    return ObjectStore(settings.bucket, aws_client("s3", settings))
