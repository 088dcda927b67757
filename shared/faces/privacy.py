"""Face privacy service: request options, the detectors of this process, detect and anonymize."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from shared.faces.anonymize import AnonymizeStyle, anonymize, strength
from shared.faces.detections import FaceDetections
from shared.faces.detector_names import Detector
from shared.faces.detectors import (
    CenterFaceDetector,
    CombinedDetector,
    FaceDetector,
    FusedDetector,
    MediaPipeDetector,
    RetinaFaceDetector,
)
from shared.faces.models import CENTERFACE_INT8, MEDIAPIPE_FULL_RANGE, RETINAFACE, RETINAFACE_INT8, model_path
from shared.faces.settings import FaceSettings
from shared.vision.images import EncodedImage, decode_image, encode_image, scale_to_8_bit


class AnonymizeOptions(BaseModel):
    """The form fields photos and videos share: which detector, and how a face is hidden (all optional)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["blur", "pixelate", "solid"] = "blur"
    shape: Literal["ellipse", "rectangle"] = "ellipse"
    margin: float = Field(0.3, ge=0.0, le=1.0, description="Enlargement of each side, fraction of the face box")
    min_confidence: float | None = Field(None, ge=0.0, le=1.0)
    detector: Detector | None = None

    def style(self, draw_boxes: bool = False) -> AnonymizeStyle:
        return AnonymizeStyle(mode=self.mode, shape=self.shape, margin=self.margin, draw_boxes=draw_boxes)


class FaceOptions(AnonymizeOptions):
    """Form fields of POST /process and /detect (all optional)."""

    draw_boxes: bool = False
    format: Literal["jpeg", "png", "webp"] | None = None


class FaceOut(BaseModel):
    bbox: list[int]  # x, y, w, h
    confidence: float
    blur_radius: int


class FaceReport(BaseModel):
    faces: list[FaceOut]
    total_count: int
    processing_time_ms: int
    detector: str
    model: str
    width: int
    height: int


@dataclass(frozen=True)
class Analysis:
    rgb: np.ndarray
    source_format: str
    detections: FaceDetections
    detector: FaceDetector
    started: float


def to_rgb(pixels: Image.Image) -> np.ndarray:
    """Any decoded mode (L, LA, P, RGBA, CMYK, I;16, F, ...) as an 8-bit RGB array."""
    return np.asarray(scale_to_8_bit(pixels).convert("RGB"))


class FacePrivacy:
    """One per process. The model files are checked when it is made (a missing one fails the
    start-up with the fix in the message); the models are loaded on first use, in the
    process that serves (once per process, see load_detectors): gunicorn imports the function and then forks its worker, and
    MediaPipe's and OpenCV's threads do not survive a fork."""

    def __init__(self, settings: FaceSettings) -> None:
        self.settings = settings
        self.model_paths = {
            model.name: model_path(model, settings.model_dir)
            for model in (MEDIAPIPE_FULL_RANGE, CENTERFACE_INT8, RETINAFACE, RETINAFACE_INT8)
        }
        self._loading = threading.Lock()

    def detector(self, name: Detector | None) -> FaceDetector:
        with self._loading:
            detectors = load_detectors(
                self.model_paths[MEDIAPIPE_FULL_RANGE.name],
                self.model_paths[CENTERFACE_INT8.name],
                self.model_paths[RETINAFACE.name],
                self.model_paths[RETINAFACE_INT8.name],
                self.settings.face_max_input_side,
            )
        return detectors[name or self.settings.face_detector]

    def analyze(self, data: bytes, options: FaceOptions) -> Analysis:
        decoded = decode_image(data, self.settings.max_image_pixels)
        started = time.perf_counter()
        rgb = to_rgb(decoded.pixels)
        detector = self.detector(options.detector)
        detections = detector.detect(rgb)
        if options.min_confidence is not None:
            detections = detections.above(options.min_confidence)
        return Analysis(rgb, decoded.format, detections, detector, started)

    def detect(self, data: bytes, options: FaceOptions) -> FaceReport:
        analysis = self.analyze(data, options)
        radii = [strength(w, h, options.mode) for _, _, w, h in analysis.detections.boxes]
        return self._report(analysis, radii)

    def anonymize(self, data: bytes, options: FaceOptions, keep_format: bool = False) -> tuple[FaceReport, EncodedImage]:
        analysis = self.analyze(data, options)
        output, radii = anonymize(analysis.rgb, analysis.detections, options.style(options.draw_boxes))
        image_format = analysis.source_format if keep_format else self.output_format(options, analysis.source_format)
        encoded = encode_image(Image.fromarray(output), image_format, quality=self.settings.face_output_quality)
        return self._report(analysis, radii), encoded

    @staticmethod
    def output_format(options: FaceOptions, source_format: str) -> str:
        if options.format:
            return options.format.upper()
        return "PNG" if source_format == "PNG" else "JPEG"

    def _report(self, analysis: Analysis, radii: list[int]) -> FaceReport:
        faces = [
            FaceOut(bbox=[round(v) for v in box], confidence=round(float(score), 3), blur_radius=radius)
            for box, score, radius in zip(analysis.detections.boxes, analysis.detections.scores, radii, strict=True)
        ]
        return FaceReport(
            faces=faces,
            total_count=len(faces),
            processing_time_ms=round((time.perf_counter() - analysis.started) * 1000),
            detector=analysis.detector.name,
            model=analysis.detector.model_name,
            width=int(analysis.rgb.shape[1]),
            height=int(analysis.rgb.shape[0]),
        )


@lru_cache(maxsize=4)
def load_detectors(
    mediapipe_path: Path, centerface_path: Path, retinaface_path: Path, retinaface_int8_path: Path, max_input_side: int
) -> dict[Detector, FaceDetector]:
    """The detectors of this process, loaded once and kept for its lifetime (a MediaPipe
    detector must never be garbage-collected while the process runs: its destructor can
    deadlock). By the names they give themselves (detector_names.py)."""
    mediapipe = MediaPipeDetector(mediapipe_path, min_score=0.5)
    centerface = CenterFaceDetector(centerface_path, max_input_side=max_input_side)
    retinaface = RetinaFaceDetector(retinaface_path, max_input_side=max_input_side)
    fused = FusedDetector(centerface, RetinaFaceDetector(retinaface_int8_path, max_input_side=max_input_side))
    combined = CombinedDetector([centerface, mediapipe])
    return {detector.name: detector for detector in (fused, combined, retinaface, centerface, mediapipe)}
