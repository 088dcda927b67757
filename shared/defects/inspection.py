"""Inspecting one image: decode it with the platform's limits, run the model, draw the result;
and the per-image answer of POST /api/detect in the seed's field names."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field, RootModel

from shared.defects.annotate import annotate
from shared.platform.errors import InspectionRefused, PayloadTooLarge
from shared.platform.file_names import printable_name as platform_printable_name
from shared.vision.images import SUPPORTED_FORMATS, decode_image

if TYPE_CHECKING:
    from shared.defects.model import Inspection

#: The multipart field of POST /api/detect (the seed's).
IMAGES_FIELD = "images"
#: The seed's name for a file sent without one.
DEFAULT_NAME = "uploaded_image.jpg"


class Inspector(Protocol):
    """What inspection needs of a model (shared.defects.model.DefectModel)."""

    def inspect(self, image: np.ndarray) -> Inspection: ...


@dataclass(frozen=True)
class ImageUpload:
    name: str
    data: bytes
    refused: str | None = None  # why it cannot be inspected, known before it was read: its own error entry


@dataclass(frozen=True)
class InspectedImage:
    name: str
    inspection: Inspection
    annotated_png: bytes
    width: int
    height: int
    processing_time: float  # seconds: decode, model and drawing


class FilePart(Protocol):
    """A multipart file part, as the HTTP layer hands it over (no web framework here). The
    platform's parts (shared.platform.http.FilePart) also say why one cannot be used, known
    before it is read (``unreadable``: its headers, its file name, were not UTF-8)."""

    @property
    def filename(self) -> str | None: ...

    def read(self) -> bytes: ...


def uploaded_images(parts: Sequence[FilePart], max_images: int, fields_sent: Sequence[str] = ()) -> list[ImageUpload]:
    """The ``images`` parts of a multipart request, in order (parts with neither a file name nor
    content, as a browser sends for an empty file input, do not count); 400 in the seed's shape
    when there are none (naming the file fields that were sent), 413 above ``max_images``,
    checked before any is read."""
    if len(parts) > max_images:
        raise PayloadTooLarge(f"{len(parts)} images in one request; the limit is {max_images} (VISIONFN_DEFECT_MAX_BATCH_IMAGES)")
    uploads = []
    for part in parts:
        if unreadable := getattr(part, "unreadable", None):
            uploads.append(ImageUpload(printable_name(part.filename), b"", refused=unreadable))
            continue
        data = part.read()
        if part.filename or data:
            uploads.append(ImageUpload(printable_name(part.filename), data))
    if not uploads:
        sent = ", ".join(sorted(set(fields_sent))) or "none"
        raise InspectionRefused(
            "No images provided", f"send one or more files in the multipart field '{IMAGES_FIELD}'; file fields sent: {sent}"
        )
    return uploads


def declared_pixels(data: bytes) -> int:
    """The pixel count an image's header declares (nothing decoded); 0 for what is not an image
    (it fails on its own when inspected)."""
    try:
        with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as image:
            return image.width * image.height
    except Exception:  # not an image, or a header Pillow refuses: inspected (and refused) later
        return 0


def check_batch_pixels(uploads: Sequence[ImageUpload], max_pixels: int, max_image_pixels: int) -> None:
    """413 before any decoding when the batch's images hold more than ``max_pixels`` in all (an
    image over ``max_image_pixels`` does not count: it is refused on its own, undecoded)."""
    total = sum(pixels for pixels in map(declared_pixels, (upload.data for upload in uploads)) if pixels <= max_image_pixels)
    if total > max_pixels:
        raise PayloadTooLarge(
            f"the {len(uploads)} images hold {total} pixels in all; the limit is {max_pixels} "
            "(VISIONFN_DEFECT_MAX_BATCH_PIXELS): send fewer or smaller images per request"
        )


def printable_name(name: str | None) -> str:
    """A file name as recorded (the platform's ``printable_name``); the seed's default for none."""
    return platform_printable_name(name, DEFAULT_NAME)


def model_input(image: Image.Image) -> np.ndarray:
    """The pixels the model takes: HxW grey for grey pictures, HxWx3 RGB for everything else."""
    if image.mode in ("L", "1", "LA", "I", "I;16", "F"):
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))


def inspect_image(model: Inspector, data: bytes, name: str, max_pixels: int) -> InspectedImage:
    """Decode (400 not an image, 413 too large, 415 a format not taken), inspect and annotate."""
    started = time.perf_counter()
    decoded = decode_image(data, max_pixels)
    pixels = model_input(decoded.pixels)
    inspection = model.inspect(pixels)
    png = annotate(pixels, inspection.defects, title=f"{inspection.label} {inspection.score:.2f}")
    return InspectedImage(
        name=name,
        inspection=inspection,
        annotated_png=png,
        width=pixels.shape[1],
        height=pixels.shape[0],
        processing_time=time.perf_counter() - started,
    )


# --- the answer of POST /api/detect --------------------------------------------------------------


class DefectOut(BaseModel):
    label: str
    score: float = Field(description="0..1")
    box: list[int] = Field(description="[x, y, w, h] in image pixels")


class DetectionResult(BaseModel):
    """One inspected image: the seed's fields, then ours."""

    name: str = Field(description="The file name sent")
    defect_count: int = Field(description="Number of defects located")
    labels: str = Field(description="The image's class (the seed's predicted label)")
    dice: float = Field(description="Confidence of that class, 0..1")
    processing_time: float = Field(description="Seconds spent on this image (decode, model, drawing)")
    result_image: str = Field(description="The annotated picture, base64 PNG")
    defects: list[DefectOut] = Field(description="Each located defect")
    figId: int = Field(description="The record's id (GET /api/data/...)")
    resFig: str = Field(description="Object key of the annotated picture in the bucket")
    width: int
    height: int


class DetectionFailure(BaseModel):
    """An image of the batch that could not be inspected (the others are)."""

    name: str
    error: str = Field(description='"Invalid image data for <name>" (the seed\'s message)')
    details: str = Field(description="What is wrong with it")
    status: int = Field(description="The HTTP status this alone would get: 400, 413 or 415")


class DetectionResults(RootModel[list[DetectionResult | DetectionFailure]]):
    """One entry per image sent, in order."""


def defects_of(inspection: Inspection) -> list[DefectOut]:
    return [DefectOut(label=d.label, score=round(float(d.score), 4), box=[int(v) for v in d.box]) for d in inspection.defects]


def detection_result(inspected: InspectedImage, fig_id: int, result_key: str) -> DetectionResult:
    inspection = inspected.inspection
    return DetectionResult(
        name=inspected.name,
        defect_count=len(inspection.defects),
        labels=inspection.label,
        dice=round(float(inspection.score), 4),
        processing_time=round(inspected.processing_time, 4),
        result_image=base64.b64encode(inspected.annotated_png).decode("ascii"),
        defects=defects_of(inspection),
        figId=fig_id,
        resFig=result_key,
        width=inspected.width,
        height=inspected.height,
    )


def detection_failure(name: str, status: int, details: str) -> DetectionFailure:
    return DetectionFailure(name=name, error=f"Invalid image data for {name}", details=details, status=status)


def refuse_if_none_inspected(outcomes: Sequence[DetectionResult | DetectionFailure]) -> None:
    """Not one image could be inspected: the seed's 400 for the first bad one (its own status
    when that is 413 or 415), with every image's failure listed under ``results``."""
    if outcomes and all(isinstance(outcome, DetectionFailure) for outcome in outcomes):
        first = outcomes[0]
        assert isinstance(first, DetectionFailure)
        raise InspectionRefused(first.error, first.details, status=first.status, results=[outcome.model_dump() for outcome in outcomes])
