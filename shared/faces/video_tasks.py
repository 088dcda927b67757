"""Face video anonymization as asynchronous tasks: submit (probe, store, queue) and work (claim,
anonymize every frame with progress on the task, finish). The job-queue pattern of the task
platform: a task row with its job in one transaction (outbox), a lease renewed while working."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

from pydantic import Field

from shared.faces.privacy import AnonymizeOptions, FacePrivacy
from shared.faces.settings import FaceSettings, get_face_settings
from shared.faces.video import OUTPUT_CONTENT_TYPE, FrameAnonymizer, VideoInfo, VideoLimits, anonymize_video, probe_video
from shared.platform.batch import Invocation, Outcome, read_message
from shared.platform.errors import BadRequest, LeaseLost, ServiceUnavailable, TimedOut
from shared.platform.events import SqsRecord
from shared.platform.file_names import printable_name
from shared.platform.leases import Lease
from shared.platform.messaging import JobQueue, Outbox
from shared.platform.storage import ObjectStore, aws_client, get_object_store
from shared.platform.task_jobs import TASK_JOB, TaskWorker, store_and_dispatch
from shared.platform.tasks import TaskOut, TaskRepository

log = logging.getLogger("visionfn.faces.video")

TOOL = "face_video"
RESULT_NAME = "anonymized.mp4"
#: Seconds kept, before the function's deadline, to record a timed-out task.
TIMEOUT_MARGIN_SECONDS = 2.0
INPUT_NAMES = {"mp4/mov": "video.mp4", "webm": "video.webm"}
#: The end of a sent file name kept in the task's params.
MAX_FILENAME_LENGTH = 200


class FaceVideoOptions(AnonymizeOptions):
    """Form fields of POST /api/v1/faces/video (all optional)."""

    keep_audio: bool = Field(True, description="Keep the sound track (re-encoded to AAC); false drops it")
    track_frames: int | None = Field(
        None, ge=0, le=100, description="Frames a lost face stays covered (default VISIONFN_FACE_VIDEO_TRACK_FRAMES)"
    )


def inbox_options(settings: FaceSettings) -> FaceVideoOptions:
    """The options of the inbox's videos: the defaults, hiding what VISIONFN_FACE_INBOX_HIDE names."""
    return FaceVideoOptions(hide=settings.inbox_hide_option)


def limits_of(settings: FaceSettings) -> VideoLimits:
    """The video limits of the settings (max frames and decoded pixels derived where unset)."""
    return VideoLimits(
        settings.face_video_max_bytes,
        settings.face_video_max_seconds,
        settings.face_video_max_pixels,
        max_fps=settings.face_video_max_fps,
        max_frames=settings.face_video_max_frames or 0,
        max_decoded_pixels=settings.face_video_max_decoded_pixels or 0,
    )


class FaceVideoTasks:
    def __init__(self, privacy: FacePrivacy, store: ObjectStore, tasks: TaskRepository, queue: JobQueue, settings: FaceSettings) -> None:
        self.privacy = privacy
        self.store = store
        self.tasks = tasks
        self.queue = queue
        self.settings = settings
        self.worker = TaskWorker(TOOL, tasks, queue, settings)

    # --- submission ------------------------------------------------------------------------------
    def submit(self, owner: str, options: FaceVideoOptions, data: bytes, filename: str | None = None) -> TaskOut:
        """Probe the video (4xx and no task when it is unusable), then the task with its job,
        the video stored under ``uploads/<uid>/``, the job sent."""
        info = probe_video(data, limits_of(self.settings))
        uid = uuid.uuid4().hex
        key = f"uploads/{uid}/{INPUT_NAMES[info.container]}"
        name = printable_name(filename)[-MAX_FILENAME_LENGTH:]  # no NUL nor control characters in the task's params
        extra = {"filename": name} if name else {}
        task = self._create(uid, owner, {**options.params(), "source": _info(info), **extra}, key)
        return store_and_dispatch(self.tasks, self.store, task, [(data, "video/webm" if info.container == "webm" else "video/mp4")])

    def submit_stored(self, owner: str, key: str, data: bytes, output_key: str) -> TaskOut:
        """A video already in the bucket (an inbox upload): probed, then its task and job; the
        worker also writes the result to ``output_key`` (and ``output_key``.json)."""
        info = probe_video(data, limits_of(self.settings))
        params = {**inbox_options(self.settings).params(), "source": _info(info), "output_key": output_key}
        task = self._create(uuid.uuid4().hex, owner, params, key)
        self.tasks.dispatch(task.uid)
        return task

    def _create(self, uid: str, owner: str, params: dict[str, Any], key: str) -> TaskOut:
        if not self.queue.queue_url:
            raise ServiceUnavailable("No job queue is configured for face videos (VISIONFN_FACE_VIDEO_QUEUE_URL)")
        return self.tasks.create(TOOL, params, [key], uid=uid, job_queue=self.queue.queue_url, owner=owner)

    # --- work ------------------------------------------------------------------------------------
    def handle_job(self, record: SqsRecord, invocation: Invocation) -> Outcome:
        job = read_message(record, TASK_JOB, '{"uid"}')
        return self.worker.take(job.uid, record, lambda lease: self._work(lease, record, invocation))

    def _work(self, lease: Lease, record: SqsRecord, invocation: Invocation) -> tuple[dict[str, Any], list[str]]:
        """Anonymize every frame, with progress on the task; ``(result_data, result_files)``."""
        task = self.tasks.get(lease.key)
        if task.tool != TOOL:
            raise BadRequest(f"A {task.tool} task on the face video queue")
        options = FaceVideoOptions.model_validate({k: v for k, v in task.params.items() if k in FaceVideoOptions.model_fields})
        total = int(task.params.get("source", {}).get("frames", 0))
        with _Progress(self, lease, record, invocation, total, self.settings.task_lease_seconds) as progress:
            (stored,) = self.store.get_many(task.input_files)
            frame_work = FrameAnonymizer(
                self.privacy.detector(options.detector, options.profile),  # loads the models on the first task
                options.style(),
                track_frames=self.settings.face_video_track_frames if options.track_frames is None else options.track_frames,
                min_confidence=options.min_confidence,
                text_stage=self.privacy.text_stage() if options.targets & {"text", "numbers"} else None,
                hide=options.targets,
            )
            started = time.monotonic()
            result = anonymize_video(
                stored.data, frame_work, keep_audio=options.keep_audio, limits=limits_of(self.settings), progress=progress
            )
            key = f"results/{lease.key}/{RESULT_NAME}"
            self.store.put(key, result.data, OUTPUT_CONTENT_TYPE)
            keys = [key]
            seconds = time.monotonic() - started
            result_data = {
                "frames_done": result.frames,
                "frames_total": result.frames,
                "faces_max": max(result.covered, default=0),
                "frames_with_faces": sum(1 for count in result.covered if count),
                "detected_per_frame": result.detected,
                "covered_per_frame": result.covered,
                "width": result.width,
                "height": result.height,
                "fps": result.fps,
                "audio": result.audio,
                "detector": frame_work.detector.name,
                "output_bytes": len(result.data),
                "processing_seconds": round(seconds, 2),
                "frames_per_second": round(result.frames / max(seconds, 1e-6), 2),
            }
            if frame_work.hides_text:
                result_data |= {
                    "hide": options.hide,
                    "text_max": max(frame_work.text_covered, default=0),
                    "frames_with_text": sum(1 for count in frame_work.text_covered if count),
                    "text_detected_per_frame": frame_work.text_detected,
                    "text_covered_per_frame": frame_work.text_covered,
                }
            if output_key := task.params.get("output_key"):  # an inbox upload: next to its other outputs
                self.store.put_many(
                    [
                        (output_key, result.data, OUTPUT_CONTENT_TYPE),
                        (f"{output_key}.json", json.dumps({"task": lease.key, **result_data}).encode(), "application/json"),
                    ]
                )
                keys += [output_key, f"{output_key}.json"]
        return result_data, keys


class _Progress:
    """The worker's heartbeat, in a thread while the frames are worked: every
    ``lease_seconds / 3``, ``TaskWorker.heartbeat`` with ``frames_done``/``frames_total`` as the
    progress (the task's result_data meanwhile). Called after each frame, it
    counts it, stops the work when the lease was lost, and stops it (TimedOut) before the
    function's deadline."""

    def __init__(
        self, service: FaceVideoTasks, lease: Lease, record: SqsRecord, invocation: Invocation, total: int, lease_seconds: int
    ) -> None:
        self.service, self.lease, self.record, self.invocation = service, lease, record, invocation
        self.total, self.lease_seconds = total, lease_seconds
        self.frames_done = 0
        self.lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{lease.key}", daemon=True)

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            progress = {"frames_done": self.frames_done, "frames_total": max(self.total, self.frames_done)}
            try:
                self.service.worker.heartbeat(self.lease, self.record, progress)
            except LeaseLost as error:
                self.lost = error
                return
            except Exception as error:  # an outage of the database: the lease may still hold
                log.warning("task %s: heartbeat failed: %s", self.lease.key, error)

    def __call__(self, frames_done: int) -> None:
        self.frames_done = frames_done
        if self.lost is not None:
            raise self.lost
        if self.invocation.remaining() < TIMEOUT_MARGIN_SECONDS:
            raise TimedOut(
                f"Timed out after {self.invocation.timeout_seconds} s (the function's Timeout) at frame "
                f"{frames_done} of {self.total}; stopped"
            )


def _info(info: VideoInfo) -> dict[str, Any]:
    return {
        "container": info.container,
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "frames": info.frames,
        "seconds": info.seconds,
        "fps": info.fps,
        "audio": info.has_audio,
    }


def video_tasks(privacy: FacePrivacy | None = None) -> FaceVideoTasks:
    """The service of the face_video function, and the face inbox's way to queue videos (one per process)."""
    settings = get_face_settings()
    sqs = aws_client("sqs", settings)
    outbox = Outbox.of_stack(settings, sqs)
    return FaceVideoTasks(
        privacy or FacePrivacy(settings),
        get_object_store(),
        TaskRepository(outbox=outbox),
        JobQueue(sqs, settings.face_video_queue_url),
        settings,
    )
