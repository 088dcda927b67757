"""POST /api/detect's work: inspect each image of a batch on its own, store the annotated
pictures, record one row per inspected image, answer one entry per image in order."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from shared.defects.inspection import (
    DetectionFailure,
    DetectionResult,
    DetectionResults,
    ImageUpload,
    InspectedImage,
    Inspector,
    check_batch_pixels,
    defects_of,
    detection_failure,
    detection_result,
    inspect_image,
    refuse_if_none_inspected,
)
from shared.defects.records import DefectRecords, NewRecord
from shared.defects.settings import DefectSettings
from shared.platform.db.models import utc_now
from shared.platform.errors import VisionFnError
from shared.platform.storage import ObjectStore

log = logging.getLogger("visionfn.defects")

#: Annotated pictures of POST /api/detect: outputs/defects/api/<UTC day>/<random id>.png
API_OUTPUT_PREFIX = "outputs/defects/api/"


def new_record(inspected: InspectedImage, result_key: str, source_key: str | None = None, source_etag: str | None = None) -> NewRecord:
    inspection = inspected.inspection
    return NewRecord(
        name=inspected.name,
        label=inspection.label,
        num=len(inspection.defects),
        dice=float(inspection.score),
        result_key=result_key,
        defects=[defect.model_dump() for defect in defects_of(inspection)],
        processing_time_ms=round(inspected.processing_time * 1000),
        source_key=source_key,
        source_etag=source_etag,
    )


class DefectInspection:
    """The model (loaded once per process), the bucket and the records."""

    def __init__(self, model: Inspector, store: ObjectStore, records: DefectRecords, settings: DefectSettings) -> None:
        self.model = model
        self.store = store
        self.records = records
        self.settings = settings

    def inspect(self, data: bytes, name: str) -> InspectedImage:
        return inspect_image(self.model, data, name, self.settings.max_image_pixels)

    def inspect_batch(self, uploads: Sequence[ImageUpload], owner: str) -> DetectionResults:
        """Each image on its own: a bad one is an error entry (its name, the reason, its status)
        and the others are inspected, stored and recorded. Not one good image: the seed's 400."""
        check_batch_pixels(uploads, self.settings.defect_max_batch_pixels, self.settings.max_image_pixels)
        outcomes: list[InspectedImage | DetectionFailure] = []
        for upload in uploads:
            if upload.refused:
                outcomes.append(detection_failure(upload.name, 400, upload.refused))
                continue
            try:
                outcomes.append(self.inspect(upload.data, upload.name))
            except VisionFnError as error:
                if not error.is_client_error:
                    raise
                outcomes.append(detection_failure(upload.name, error.status, str(error.detail)))
        inspected = [outcome for outcome in outcomes if isinstance(outcome, InspectedImage)]
        if not inspected:
            refuse_if_none_inspected([outcome for outcome in outcomes if isinstance(outcome, DetectionFailure)])
        day = utc_now().date().isoformat()
        keys = [f"{API_OUTPUT_PREFIX}{day}/{uuid.uuid4().hex}.png" for _ in inspected]
        self.store.put_many([(key, image.annotated_png, "image/png") for key, image in zip(keys, inspected, strict=True)])
        ids = self.records.add_many(owner, [new_record(image, key) for key, image in zip(keys, inspected, strict=True)])
        results = iter(detection_result(image, fig_id, key) for image, fig_id, key in zip(inspected, ids, keys, strict=True))
        answer: list[DetectionResult | DetectionFailure] = [
            next(results) if isinstance(outcome, InspectedImage) else outcome for outcome in outcomes
        ]
        log.info("%d image(s) inspected for %s, %d refused", len(inspected), owner, len(outcomes) - len(inspected))
        return DetectionResults(answer)
