"""The HTTP client: one method per API operation, retries with backoff, task waiting, downloads."""

from __future__ import annotations

import html
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from visionfn.models import (
    RETRY_STATUSES,
    RETRY_STATUSES_POST,
    AnonymizedImage,
    ApiError,
    FileInput,
    Task,
    TaskFailed,
    TaskPage,
    VisionfnError,
    WaitTimeout,
    _form,
    bucket_files,
    load_config,
    read_file,
    upload_content_type,
)


class Client:
    """The visionfn API.

    >>> client = Client()                       # VISIONFN_URL, VISIONFN_API_KEY or the config file
    >>> task = client.wait(client.match_template("scene.png", "icon.png", threshold=0.9))
    >>> client.download_results(task, "out/")
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        config = load_config(url, key)
        self.url = config.url
        self.key = config.key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session = session or requests.Session()
        self._sleep = sleep
        if self.key:
            self.session.headers["Authorization"] = f"Bearer {self.key}"
        self.session.headers.setdefault("User-Agent", "visionfn-client/0.1")
        #: The bucket's presigned links carry their own signature: nothing of the API's session
        #: (its key, its headers) is ever sent there.
        self.bucket_session = requests.Session()
        self.bucket_session.headers["User-Agent"] = "visionfn-client/0.1"

    # --- transport ------------------------------------------------------------------------

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.strip().isdigit():
                return min(float(retry_after), self.max_backoff)
        return min(self.max_backoff, self.backoff * (2**attempt)) * (0.5 + random.random() / 2)  # noqa: S311 (jitter)

    def request(
        self, method: str, path: str, *, files: list[tuple[str, tuple[str | None, Any]]] | None = None, **kwargs: Any
    ) -> requests.Response:
        """One API call, retried on 429/502/503/504 (POST: 429/502/503) and on connection errors
        (POST: only when the connection was never made); an error answer raises ApiError."""
        return self._send(self.session, method, self.url + path, files=files, **kwargs)

    def _send(self, session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
        """``request`` to any URL through ``session`` (the API's, or the bucket's that sends no key)."""
        method = method.upper()
        retry_statuses = RETRY_STATUSES_POST if method == "POST" else RETRY_STATUSES
        kwargs.setdefault("timeout", self.timeout)
        attempt = 0
        while True:
            response: requests.Response | None = None
            try:
                response = session.request(method, url, **kwargs)
            except requests.ConnectionError as error:
                sent = method != "POST" or isinstance(error, requests.ConnectTimeout) or _refused(error)
                if attempt >= self.retries or not sent:
                    raise VisionfnError(f"{method} {_without_query(url)}: {error}") from error
            except requests.Timeout as error:
                if attempt >= self.retries or method == "POST":
                    raise VisionfnError(f"{method} {_without_query(url)}: no answer within {self.timeout} s") from error
            else:
                if response.status_code not in retry_statuses or attempt >= self.retries:
                    if response.status_code >= 400:
                        raise _api_error(response)
                    return response
            self._sleep(self._delay(attempt, response))
            attempt += 1

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # --- faces ----------------------------------------------------------------------------

    def anonymize(
        self,
        image: FileInput,
        *,
        mode: str | None = None,
        shape: str | None = None,
        margin: float | None = None,
        min_confidence: float | None = None,
        draw_boxes: bool | None = None,
        format: str | None = None,
        detector: str | None = None,
        profile: str | None = None,
        hide: str | None = None,
    ) -> AnonymizedImage:
        """POST /process: every face hidden (``mode`` blur/pixelate/solid); ``hide`` a comma list of
        faces, text, numbers."""
        response = self.request(
            "POST",
            "/process",
            files=[("image", read_file(image))],
            data=_form(
                {
                    "mode": mode,
                    "shape": shape,
                    "margin": margin,
                    "min_confidence": min_confidence,
                    "draw_boxes": draw_boxes,
                    "format": format,
                    "detector": detector,
                    "profile": profile,
                    "hide": hide,
                }
            ),
        )
        return AnonymizedImage(
            response.content,
            response.headers.get("Content-Type", "image/jpeg").split(";")[0],
            int(response.headers.get("X-Faces-Count", "0")),
        )

    def anonymize_report(self, image: FileInput, **options: Any) -> dict[str, Any]:
        """POST /process with Accept: application/json: the faces found and hidden, no picture."""
        return self._json(
            "POST", "/process", files=[("image", read_file(image))], data=_form(options), headers={"Accept": "application/json"}
        )

    def detect_faces(
        self,
        image: FileInput,
        *,
        min_confidence: float | None = None,
        detector: str | None = None,
        profile: str | None = None,
        hide: str | None = None,
    ) -> dict[str, Any]:
        """POST /detect: the faces' boxes (and, with ``hide`` naming text or numbers, the text regions'), no pixel work."""
        form = _form({"min_confidence": min_confidence, "detector": detector, "profile": profile, "hide": hide})
        return self._json("POST", "/detect", files=[("image", read_file(image))], data=form)

    def anonymize_video(self, video: FileInput, **options: Any) -> Task:
        """POST /api/v1/faces/video: a task that anonymizes every frame (wait for it, then download)."""
        return self._submit_task("/api/v1/faces/video", {"video": video}, options)

    # --- large files and asynchronous submits -----------------------------------------------

    def upload(self, file: FileInput, content_type: str | None = None) -> str:
        """Send a file to the bucket (POST /api/v1/uploads, then its presigned POST, which carries
        no key) and return its key, which an asynchronous route takes as ``<field>_key`` once."""
        name, data = read_file(file)
        ticket = self._json(
            "POST", "/api/v1/uploads", json={"filename": name, "content_type": content_type or upload_content_type(name), "size": len(data)}
        )
        fields = ticket["fields"]
        # S3 reads the form in order and the file last: the fields first, then the part `file`.
        self._send(
            self.bucket_session,
            "POST",
            ticket["url"],
            data=fields,
            files=[("file", (name, data, fields.get("Content-Type", "application/octet-stream")))],
        )
        return ticket["key"]

    def _submit_task(self, path: str, files: dict[str, FileInput], params: dict[str, Any]) -> Task:
        """POST an asynchronous route's form. Files that would make the request larger than a
        synchronous call carries (``INLINE_FILES_BYTES`` together) go through the bucket, the
        largest first, and the form names each by its key as ``<field>_key``."""
        named = {name: read_file(source) for name, source in files.items()}
        through_bucket = bucket_files({name: len(data) for name, (_, data) in named.items()})
        form = _form(params)
        for name in (name for name in named if name in through_bucket):
            form[f"{name}_key"] = self.upload(named[name])
        # The fields as parts too (no file name): multipart/form-data even when no file is left in it.
        parts = [(name, (None, value)) for name, value in form.items()]
        parts += [(name, file) for name, file in named.items() if name not in through_bucket]
        return Task.from_json(self._json("POST", path, files=parts))

    # --- matching -------------------------------------------------------------------------

    def _submit(self, tool: str, files: dict[str, FileInput], params: dict[str, Any]) -> Task:
        return self._submit_task(f"/api/v1/match/{tool}", files, params)

    def match_template(self, image: FileInput, template: FileInput, **params: Any) -> Task:
        """Queue template matching (``method``, ``threshold``, ``max_results``, ``use_grayscale``)."""
        return self._submit("template", {"image": image, "template": template}, params)

    def match_feature(self, query_image: FileInput, train_image: FileInput, **params: Any) -> Task:
        """Queue feature matching (``detector``, ``matcher``, ``ratio_threshold``, ``max_matches``)."""
        return self._submit("feature", {"query_image": query_image, "train_image": train_image}, params)

    def match_surface(self, model_file: FileInput, scene_file: FileInput, **params: Any) -> Task:
        """Queue 3D surface matching of two PLY files."""
        return self._submit("surface", {"model_file": model_file, "scene_file": scene_file}, params)

    def match_chain(self, image: FileInput, template: FileInput, steps: list[dict[str, Any]] | str) -> Task:
        """Queue a chain: ``steps`` is ``[{"tool": "template", "params": {...}}, ...]`` (or its JSON)."""
        return self._submit(
            "chain", {"image": image, "template": template}, {"steps": steps if isinstance(steps, str) else json.dumps(steps)}
        )

    # --- tasks and files ------------------------------------------------------------------

    def task(self, uid: str) -> Task:
        return Task.from_json(self._json("GET", f"/api/v1/tasks/{uid}"))

    def tasks(self, offset: int = 0, limit: int = 50) -> TaskPage:
        data = self._json("GET", "/api/v1/tasks", params={"offset": offset, "limit": limit})
        return TaskPage(total=data["total"], tasks=[Task.from_json(item) for item in data["tasks"]])

    def wait(
        self,
        task: Task | str,
        *,
        timeout: float | None = None,
        interval: float = 0.3,
        max_interval: float = 2.0,
        on_update: Callable[[Task], None] | None = None,
        raise_on_error: bool = False,
    ) -> Task:
        """Poll the task until it is done or error (``timeout`` None: as long as it takes)."""
        uid = task if isinstance(task, str) else task.uid
        started = time.monotonic()
        last_status = None
        while True:
            current = self.task(uid)
            if on_update is not None and current.status != last_status:
                on_update(current)
            last_status = current.status
            if current.finished:
                if raise_on_error and current.status == "error":
                    raise TaskFailed(current)
                return current
            if timeout is not None and time.monotonic() - started > timeout:
                raise WaitTimeout(current, timeout)
            self._sleep(interval)
            interval = min(max_interval, interval * 1.5)

    def download(self, key: str, destination: str | os.PathLike[str]) -> Path:
        """GET /api/v1/files/{key} into ``destination`` (a folder: the key's last part as the name)."""
        target = Path(destination)
        if target.is_dir():
            target = target / key.rsplit("/", 1)[-1]
        response = self._file(key, stream=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            for chunk in response.iter_content(65536):
                out.write(chunk)
        return target

    def file_bytes(self, key: str) -> bytes:
        return self._file(key).content

    def _file(self, key: str, *, stream: bool = False) -> requests.Response:
        """GET /api/v1/files/{key}. A file larger than an answer carries comes as a 303 to a
        presigned link of the bucket, followed here with a plain GET that sends no key."""
        response = self.request("GET", f"/api/v1/files/{key}", stream=stream, allow_redirects=False)
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            response.close()
            return self._send(self.bucket_session, "GET", location, stream=stream)
        return response

    def download_results(self, task: Task, folder: str | os.PathLike[str]) -> list[Path]:
        """Every result file of a task into ``folder`` (chain steps keep their ``step-<n>/`` folder)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        prefix = f"results/{task.uid}/"
        paths = []
        for key in task.result_files:
            relative = key[len(prefix) :] if key.startswith(prefix) else key.rsplit("/", 1)[-1]
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            paths.append(self.download(key, target))
        return paths

    # --- settings -------------------------------------------------------------------------

    def get_settings(self, tool: str) -> dict[str, Any]:
        """The owner's defaults of a tool (template, feature, surface)."""
        return self._json("GET", f"/api/v1/settings/{tool}")["params"]

    def put_settings(self, tool: str, params: dict[str, Any]) -> dict[str, Any]:
        """Replace the owner's defaults of a tool (names left out go back to the built-in default)."""
        return self._json("PUT", f"/api/v1/settings/{tool}", json=params)["params"]

    # --- webhooks -------------------------------------------------------------------------

    def create_webhook(
        self, url: str, *, secret: str | None = None, events: Iterable[str] | None = None, description: str = ""
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"url": url, "description": description}
        if secret is not None:
            body["secret"] = secret
        if events is not None:
            body["events"] = list(events)
        return self._json("POST", "/api/v1/webhooks", json=body)

    def webhooks(self) -> list[dict[str, Any]]:
        return self._json("GET", "/api/v1/webhooks")

    def delete_webhook(self, webhook_id: str) -> None:
        self.request("DELETE", f"/api/v1/webhooks/{webhook_id}")

    def deliveries(self, webhook_id: str, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        return self._json("GET", f"/api/v1/webhooks/{webhook_id}/deliveries", params={"offset": offset, "limit": limit})

    def redeliver(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        return self._json("POST", f"/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")

    def ping_webhook(self, webhook_id: str) -> dict[str, Any]:
        return self._json("POST", f"/api/v1/webhooks/{webhook_id}/ping")

    # --- defect inspection and its data ---------------------------------------------------

    def inspect(self, images: Iterable[FileInput]) -> list[dict[str, Any]]:
        """POST /api/detect: one entry per image, in order; a bad file gets an entry with ``error``.
        A batch where not one image could be inspected is still returned as its entries."""
        parts = [("images", read_file(image)) for image in images]
        try:
            return self._json("POST", "/api/detect", files=parts)
        except ApiError as error:
            if isinstance(error.body, dict) and isinstance(error.body.get("results"), list):
                return error.body["results"]
            raise

    def recent_records(self, limit: int = 120) -> list[dict[str, Any]]:
        return self._json("GET", "/api/data/getRecent", params={"limit": limit})

    def stats_by_date(self, start_date: str | None = None, end_date: str | None = None) -> list[dict[str, Any]]:
        return self._json("GET", "/api/data/statByDate", params=_form({"startDate": start_date, "endDate": end_date}))

    def search_records(
        self,
        *,
        name: str | None = None,
        num: int | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        page: int = 1,
        limit: int = 20,
    ) -> dict[str, Any]:
        return self._json(
            "GET",
            "/api/data/search",
            params=_form({"name": name, "num": num, "startDate": start_date, "endDate": end_date, "page": page, "limit": limit}),
        )

    def analysis(self, limit: int = 120) -> dict[str, Any]:
        return self._json("GET", "/api/data/analysis", params={"limit": limit})

    def health(self) -> dict[str, Any]:
        response = self.session.get(self.url + "/health", timeout=self.timeout)
        return response.json()


def _refused(error: requests.ConnectionError) -> bool:
    """The connection was never made (nothing was sent): safe to try a POST again."""
    text = repr(error)
    return any(mark in text for mark in ("Connection refused", "NewConnectionError", "Name or service not known"))


def _without_query(url: str) -> str:
    """A URL fit for a message: a presigned link's signature left out."""
    return url.split("?", 1)[0]


def _bucket_error(response: requests.Response) -> ApiError | None:
    """S3's XML error (``<Error><Code>EntityTooLarge</Code><Message>...``) as an ApiError."""
    code, message = (re.search(rf"<{tag}>([^<]*)</{tag}>", response.text) for tag in ("Code", "Message"))
    if code is None:
        return None
    host = urlsplit(response.url).netloc
    detail = f"the bucket ({host}) refused it: {code[1]}" + (f": {html.unescape(message[1])}" if message else "")
    return ApiError(response.status_code, detail, response.text)


def _api_error(response: requests.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        return _bucket_error(response) or ApiError(response.status_code, response.text.strip() or response.reason, None)
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error") or body
        if body.get("details") and isinstance(detail, str):
            detail = f"{detail}: {body['details']}"
        return ApiError(response.status_code, detail, body)
    return ApiError(response.status_code, body, body)
