"""Object-store adapter over boto3 (LocalStack, AWS S3, MinIO or GCS interoperability)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.errors import NotFound, ObjectNotFound
from shared.settings import Settings, get_settings


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
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, Metadata=metadata or {}
        )

    def get(self, key: str) -> StoredObject:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFound(key) from error
            raise
        return StoredObject(
            key=key,
            data=response["Body"].read(),
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

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
                return False
            raise
        return True

    def check(self) -> None:
        """Raise if the bucket cannot be reached (health)."""
        self.client.head_bucket(Bucket=self.bucket)


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
