"""Health of the platform parts a function depends on: database, bucket, queues."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from shared.faces.models import DETECTOR_MODELS, ModelMissing, model_identity, model_path
from shared.faces.settings import FaceSettings
from shared.platform.db.engine import check_database
from shared.platform.metrics import emit_metrics
from shared.platform.settings import Settings
from shared.platform.storage import ObjectStore, aws_client


class ComponentHealth(BaseModel):
    status: Literal["ok", "error"]
    detail: str | None = None


class QueueDepth(BaseModel):
    visible: int
    in_flight: int
    dead_letter: bool = False  # another queue's RedrivePolicy names it


class QueuesHealth(ComponentHealth):
    queues: dict[str, QueueDepth] = {}
    #: Dead-letter queues holding messages: work that failed every delivery and needs a look
    #: (flagged, not an outage: health stays 200).
    dead_letters: dict[str, int] = {}


class ModelsHealth(ComponentHealth):
    files: dict[str, str] = {}  # model name -> "ok" or what is wrong


class PlatformHealth(BaseModel):
    status: Literal["ok", "degraded"]
    model: str  # what the face functions run by default (the seed's field)
    detector: str
    stage: str
    models: ModelsHealth
    database: ComponentHealth
    bucket: ComponentHealth
    queues: QueuesHealth


def _component(check: Any) -> ComponentHealth:
    try:
        check()
    except Exception as error:  # health reports any failure instead of raising it
        return ComponentHealth(status="error", detail=f"{type(error).__name__}: {error}")
    return ComponentHealth(status="ok")


def queue_depths(settings: Settings) -> QueuesHealth:
    try:
        sqs = aws_client("sqs", settings)
        urls = sqs.list_queues(QueueNamePrefix=settings.queue_prefix).get("QueueUrls", [])
        attributes = {
            url.rsplit("/", 1)[-1]: sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["QueueArn", "RedrivePolicy", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            for url in urls
        }
    except Exception as error:  # reported, not raised
        return QueuesHealth(status="error", detail=f"{type(error).__name__}: {error}")
    if not attributes:
        return QueuesHealth(status="error", detail=f"no queue named {settings.queue_prefix}*")
    dead_letter_arns = {
        json.loads(queue["RedrivePolicy"])["deadLetterTargetArn"] for queue in attributes.values() if "RedrivePolicy" in queue
    }
    depths = {
        name: QueueDepth(
            visible=int(queue["ApproximateNumberOfMessages"]),
            in_flight=int(queue["ApproximateNumberOfMessagesNotVisible"]),
            dead_letter=queue.get("QueueArn") in dead_letter_arns,
        )
        for name, queue in attributes.items()
    }
    dead_letters = {
        name: depth.visible + depth.in_flight for name, depth in depths.items() if depth.dead_letter and depth.visible + depth.in_flight
    }
    return QueuesHealth(status="ok", queues=depths, dead_letters=dead_letters)


def model_files(settings: FaceSettings) -> ModelsHealth:
    files = {}
    for model in DETECTOR_MODELS[settings.face_detector]:
        try:
            model_path(model, settings.model_dir)
            files[model.name] = "ok"
        except ModelMissing as error:
            files[model.name] = str(error.detail)
    healthy = all(state == "ok" for state in files.values())
    return ModelsHealth(status="ok" if healthy else "error", files=files)


def platform_health(settings: FaceSettings, store: ObjectStore) -> PlatformHealth:
    database = _component(lambda: check_database(settings.database_url))
    bucket = _component(store.check)
    queues = queue_depths(settings)
    models = model_files(settings)
    healthy = all(part.status == "ok" for part in (database, bucket, queues, models))
    return PlatformHealth(
        status="ok" if healthy else "degraded",
        model=model_identity(settings.face_detector),
        detector=settings.face_detector,
        stage=settings.stage,
        models=models,
        database=database,
        bucket=bucket,
        queues=queues,
    )


def emit_dead_letter_depths(settings: Settings) -> None:
    """The messages waiting in each dead-letter queue, written as the ``dlq_depth`` metric."""
    queues = queue_depths(settings)
    for name, depth in (queues.queues or {}).items():
        if depth.dead_letter:
            emit_metrics(
                f"dead-letter queue {name}: {depth.visible + depth.in_flight} message(s)",
                {"queue": name},
                {"dlq_depth": (depth.visible + depth.in_flight, "Count")},
            )
