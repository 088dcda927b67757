"""What the client speaks: the API's limits and errors, tasks, the configuration, and the files it sends."""

from __future__ import annotations

import mimetypes
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8888"
#: Answers worth another try: rate limited, the function restarting, the platform busy, a timeout.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: A POST is not idempotent: it is retried only when the API certainly did nothing with it.
RETRY_STATUSES_POST = frozenset({429, 502, 503})
FINISHED = frozenset({"done", "error"})
#: The largest request (and answer) body of a synchronous call: AWS Lambda carries at most 6 MB
#: each way and an HTTP API passes the body base64-encoded in it, so (6 MiB - 16 KiB) / 4 * 3 bytes
#: (the API's own setting `sync_body_bytes`; larger bodies are refused with 413).
SYNC_BODY_BYTES = 4_706_304
#: The files of one asynchronous submit are sent in the request while together they stay under
#: this; above it the largest go through the bucket (POST /api/v1/uploads) until the rest fit. The
#: margin leaves room for the rest of the multipart body: boundaries and part headers (about 200
#: bytes a part) and the form fields (a chain's steps are a few KB at most).
INLINE_FILES_BYTES = SYNC_BODY_BYTES - 200 * 1024

#: A file to send: a path, its bytes (named ``upload``), an open binary file, or ``(name, bytes)``.
FileInput = str | os.PathLike[str] | bytes | IO[bytes] | tuple[str, bytes]


class VisionfnError(Exception):
    """Anything the client could not do."""


class ApiError(VisionfnError):
    """The API answered with an error: ``status`` and the API's own message (``detail``)."""

    def __init__(self, status: int, detail: Any, body: Any = None) -> None:
        self.status = status
        self.detail = detail
        self.body = body
        super().__init__(f"{status}: {format_detail(detail)}")


class TaskFailed(VisionfnError):
    def __init__(self, task: Task) -> None:
        self.task = task
        super().__init__(f"task {task.uid} ended in error: {task.error}")


class WaitTimeout(VisionfnError):
    def __init__(self, task: Task, seconds: float) -> None:
        self.task = task
        super().__init__(f"task {task.uid} still {task.status} after {seconds:.0f} s")


def format_detail(detail: Any) -> str:
    """The API's message as one line; pydantic's 422 list as ``loc: msg; ...``."""
    if isinstance(detail, list):
        parts = []
        for problem in detail:
            if isinstance(problem, dict):
                loc = ".".join(str(part) for part in problem.get("loc", []))
                parts.append(f"{loc}: {problem.get('msg', problem)}" if loc else str(problem.get("msg", problem)))
            else:
                parts.append(str(problem))
        return "; ".join(parts)
    return str(detail)


@dataclass(frozen=True)
class Task:
    """A matching task as GET /api/v1/tasks/{uid} shows it."""

    uid: str
    status: str
    tool: str
    params: dict[str, Any] = field(default_factory=dict)
    input_files: list[str] = field(default_factory=list)
    thumbnails: list[str] = field(default_factory=list)
    result_files: list[str] = field(default_factory=list)
    result_data: dict[str, Any] | None = None
    error: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    attempts: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        return cls(
            uid=data["uid"],
            status=data["status"],
            tool=data.get("tool", ""),
            params=data.get("params") or {},
            input_files=list(data.get("input_files") or []),
            thumbnails=list(data.get("thumbnails") or []),
            result_files=list(data.get("result_files") or []),
            result_data=data.get("result_data"),
            error=data.get("error"),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            attempts=int(data.get("attempts") or 0),
            raw=data,
        )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class TaskPage:
    total: int
    tasks: list[Task]


@dataclass(frozen=True)
class AnonymizedImage:
    """POST /process: the anonymized picture and the number of faces hidden."""

    content: bytes
    content_type: str
    faces_count: int

    @property
    def extension(self) -> str:
        return {"image/png": ".png", "image/webp": ".webp"}.get(self.content_type, ".jpg")


@dataclass(frozen=True)
class Config:
    url: str
    key: str | None


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "visionfn" / "config.toml"


def load_config(url: str | None = None, key: str | None = None, path: Path | None = None) -> Config:
    """Arguments first, then ``VISIONFN_URL`` / ``VISIONFN_API_KEY``, then the config file
    (``~/.config/visionfn/config.toml``: ``url = "..."``, ``key = "..."``), then the local default URL."""
    path = path or Path(os.environ.get("VISIONFN_CONFIG") or config_path())
    stored: dict[str, Any] = {}
    if path.is_file():
        try:
            stored = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise VisionfnError(f"{path} is not valid TOML: {error}") from error
    url = url or os.environ.get("VISIONFN_URL") or stored.get("url") or DEFAULT_URL
    key = key or os.environ.get("VISIONFN_API_KEY") or stored.get("key")
    return Config(url=str(url).rstrip("/"), key=str(key) if key else None)


#: Hosts of a platform on this machine (`make up`'s gateway listens on 127.0.0.1).
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def local_key_file(url: str, start: Path | None = None) -> Path | None:
    """The key `make up` wrote for the owner ``local`` (``.run/api-key``, or ``$VISIONFN_RUN_DIR/api-key``)
    when ``url`` is a platform on this machine and ``start`` (the working directory) is in a
    visionfn checkout (a folder with ``template.yaml`` and ``.run/``, it or one above it); else None."""
    if urlsplit(url).hostname not in LOCAL_HOSTS:
        return None
    if run_dir := os.environ.get("VISIONFN_RUN_DIR"):
        candidates = [Path(run_dir)]
    else:
        here = (start or Path.cwd()).resolve()
        candidates = [folder / ".run" for folder in (here, *here.parents) if (folder / "template.yaml").is_file()]
    return next((folder / "api-key" for folder in candidates if (folder / "api-key").is_file()), None)


def read_file(source: FileInput, default_name: str = "upload") -> tuple[str, bytes]:
    """``(name, bytes)`` of a file to send (read once, so a retry sends the same bytes)."""
    if isinstance(source, tuple):
        return source[0], source[1]
    if isinstance(source, bytes | bytearray):
        return default_name, bytes(source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        return path.name, path.read_bytes()
    name = os.path.basename(getattr(source, "name", "") or default_name)
    return name, source.read()


def upload_content_type(name: str) -> str:
    """The type an upload declares: the name's image/* or video/* type, else application/octet-stream
    (which every file field takes: PLY files, names without a known extension)."""
    guessed = mimetypes.guess_type(name)[0] or ""
    return guessed if guessed.startswith(("image/", "video/")) else "application/octet-stream"


def bucket_files(sizes: dict[str, int], limit: int = INLINE_FILES_BYTES) -> set[str]:
    """The file fields to send through the bucket so that the rest, sent in the request, add up to
    at most ``limit`` bytes: the largest first, none when they all fit."""
    through_bucket: set[str] = set()
    inline = sum(sizes.values())
    for name, size in sorted(sizes.items(), key=lambda item: item[1], reverse=True):
        if inline <= limit:
            break
        through_bucket.add(name)
        inline -= size
    return through_bucket


def _form(params: dict[str, Any]) -> dict[str, str]:
    """Form fields as the API reads them: booleans as true/false, None left out."""
    fields = {}
    for name, value in params.items():
        if value is None:
            continue
        fields[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return fields
