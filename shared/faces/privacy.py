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
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.faces.anonymize import AnonymizeStyle, anonymize, strength
from shared.faces.detections import FaceDetections
from shared.faces.detector_names import Detector, Profile
from shared.faces.detectors import (
    CenterFaceDetector,
    CombinedDetector,
    FaceDetector,
    FusedDetector,
    MediaPipeDetector,
    RetinaFaceDetector,
)
from shared.faces.hide import HideTarget, parse_hide
from shared.faces.models import (
    CENTERFACE_INT8,
    MEDIAPIPE_FULL_RANGE,
    PPOCR_TEXT_DETECTION_SIMPLIFIED,
    PPOCR_TEXT_RECOGNITION,
    RETINAFACE,
    RETINAFACE_INT8,
    model_path,
)
from shared.faces.settings import FaceSettings
from shared.faces.text import TextDetector, TextRecognizer, TextRegions, TextStage, hide_text
from shared.platform.metrics import emit_metrics
from shared.vision.images import EncodedImage, decode_image, encode_image, scale_to_8_bit


class AnonymizeOptions(BaseModel):
    """The form fields photos and videos share: which detector, and how a face is hidden (all optional)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["blur", "pixelate", "solid"] = "blur"
    shape: Literal["ellipse", "rectangle"] = "ellipse"
    margin: float = Field(0.3, ge=0.0, le=1.0, description="Enlargement of each side, fraction of the face box")
    min_confidence: float | None = Field(None, ge=0.0, le=1.0)
    detector: Detector | None = None
    profile: Profile | None = Field(
        None,
        description="Profile of the fused detector (default VISIONFN_FACE_PROFILE): default, or thorough (a flipped "
        "second pass and lower confirmation thresholds: more faces, more false positives, slower); with another detector a 422",
    )
    hide: str | None = Field(
        None,
        description="What to hide, a comma list of faces (the default, alone), text (every text region) and numbers "
        "(text regions reading as a run of at least 4 digits: ID and card numbers, plates, phone numbers)",
        examples=["faces,numbers"],
    )

    @field_validator("hide")
    @classmethod
    def _known_targets(cls, value: str | None) -> str | None:
        return None if value is None else ",".join(sorted(parse_hide(value)))

    @model_validator(mode="after")
    def _profile_of_fused(self) -> AnonymizeOptions:
        if self.profile not in (None, "default") and self.detector not in (None, "fused"):
            raise ValueError(f"profile {self.profile!r} is a profile of the fused detector, not of {self.detector!r}")
        return self

    @property
    def targets(self) -> frozenset[HideTarget]:
        """What ``hide`` names (faces alone when it is absent)."""
        return parse_hide(self.hide)

    def params(self) -> dict[str, object]:
        """The options as a task keeps them; ``hide`` and ``profile`` only when they were given."""
        return self.model_dump(exclude={name for name in ("hide", "profile") if getattr(self, name) is None})

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


class TextOut(BaseModel):
    bbox: list[int]  # x, y, w, h of the quadrilateral's axis-aligned box
    confidence: float
    kind: Literal["text", "number"]


class FaceTextReport(FaceReport):
    """The report when ``hide`` names ``text`` or ``numbers``: the text regions hidden (what
    they say is never there)."""

    text: list[TextOut] = Field(default_factory=list, description="Present when hide names text or numbers")
    text_count: int = 0
    text_model: str = ""


@dataclass(frozen=True)
class Analysis:
    rgb: np.ndarray
    source_format: str
    detections: FaceDetections
    detector: FaceDetector
    started: float
    text: TextRegions | None = None  # None: hide names neither text nor numbers
    text_model: str = ""


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
            for model in (
                MEDIAPIPE_FULL_RANGE,
                CENTERFACE_INT8,
                RETINAFACE,
                RETINAFACE_INT8,
                PPOCR_TEXT_DETECTION_SIMPLIFIED,
                PPOCR_TEXT_RECOGNITION,
            )
        }
        self._loading = threading.Lock()

    def detector(self, name: Detector | None, profile: Profile | None = None) -> FaceDetector:
        """The detector of that name (the setting's when None); for ``fused``, of that profile (likewise)."""
        with self._loading:
            detectors = load_detectors(
                self.model_paths[MEDIAPIPE_FULL_RANGE.name],
                self.model_paths[CENTERFACE_INT8.name],
                self.model_paths[RETINAFACE.name],
                self.model_paths[RETINAFACE_INT8.name],
                self.settings.face_max_input_side,
            )
        name = name or self.settings.face_detector
        if name == "fused" and (profile or self.settings.face_profile) == "thorough":
            return detectors["fused thorough"]
        return detectors[name]

    def text_stage(self) -> TextStage:
        """The text detector and recogniser of this process (loaded on first use, once)."""
        with self._loading:
            return load_text_stage(
                self.model_paths[PPOCR_TEXT_DETECTION_SIMPLIFIED.name],
                self.model_paths[PPOCR_TEXT_RECOGNITION.name],
                self.settings.text_max_input_side,
            )

    def analyze(self, data: bytes, options: FaceOptions) -> Analysis:
        decoded = decode_image(data, self.settings.max_image_pixels)
        started = time.perf_counter()
        rgb = to_rgb(decoded.pixels)
        detector = self.detector(options.detector, options.profile)
        targets = options.targets
        detections = detector.detect(rgb) if "faces" in targets else FaceDetections.empty()
        if options.min_confidence is not None:
            detections = detections.above(options.min_confidence)
        if not targets & {"text", "numbers"}:
            return Analysis(rgb, decoded.format, detections, detector, started)
        stage = self.text_stage()
        return Analysis(rgb, decoded.format, detections, detector, started, stage.find(rgb, targets), stage.model_name)

    def detect(self, data: bytes, options: FaceOptions) -> FaceReport:
        analysis = self.analyze(data, options)
        radii = [strength(w, h, options.mode) for _, _, w, h in analysis.detections.boxes]
        return measured("detect", len(data), self._report(analysis, radii))

    def anonymize(self, data: bytes, options: FaceOptions, keep_format: bool = False) -> tuple[FaceReport, EncodedImage]:
        analysis = self.analyze(data, options)
        pixels = analysis.rgb
        if analysis.text is not None and len(analysis.text):
            pixels = pixels.copy()
            hide_text(pixels, analysis.text, options.style(options.draw_boxes))
        output, radii = anonymize(pixels, analysis.detections, options.style(options.draw_boxes))
        image_format = analysis.source_format if keep_format else self.output_format(options, analysis.source_format)
        encoded = encode_image(Image.fromarray(output), image_format, quality=self.settings.face_output_quality)
        return measured("anonymize", len(data), self._report(analysis, radii)), encoded

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
        report = FaceReport(
            faces=faces,
            total_count=len(faces),
            processing_time_ms=round((time.perf_counter() - analysis.started) * 1000),
            detector=analysis.detector.name,
            model=analysis.detector.model_name,
            width=int(analysis.rgb.shape[1]),
            height=int(analysis.rgb.shape[0]),
        )
        if analysis.text is None:
            return report
        text = text_out(analysis.text)
        return FaceTextReport(**dict(report), text=text, text_count=len(text), text_model=analysis.text_model)


def measured(call: str, input_bytes: int, report: FaceReport) -> FaceReport:
    """The seed's call log (input size, pixels, faces, duration, detector), as a log line that is
    also a metric (per call and detector)."""
    emit_metrics(
        f"{call}: {report.total_count} face(s) in {report.width}x{report.height} ({input_bytes} bytes) "
        f"by {report.detector} in {report.processing_time_ms} ms",
        {"call": call, "detector": report.detector},
        {
            "images": (1, "Count"),
            "faces": (report.total_count, "Count"),
            "input_bytes": (input_bytes, "Bytes"),
            "pixels": (report.width * report.height, "Count"),
            "face_duration": (report.processing_time_ms, "Milliseconds"),
        },
    )
    return report


@lru_cache(maxsize=4)
def load_detectors(
    mediapipe_path: Path, centerface_path: Path, retinaface_path: Path, retinaface_int8_path: Path, max_input_side: int
) -> dict[str, FaceDetector]:
    """The detectors of this process, loaded once and kept for its lifetime (a MediaPipe
    detector must never be garbage-collected while the process runs: its destructor can
    deadlock). By the names they give themselves (detector_names.py), and the fused detector's
    thorough profile as ``fused thorough`` (on the same networks)."""
    mediapipe = MediaPipeDetector(mediapipe_path, min_score=0.5)
    centerface = CenterFaceDetector(centerface_path, max_input_side=max_input_side)
    retinaface = RetinaFaceDetector(retinaface_path, max_input_side=max_input_side)
    retinaface_int8 = RetinaFaceDetector(retinaface_int8_path, max_input_side=max_input_side)
    fused = FusedDetector.profile("default", centerface, retinaface_int8)
    combined = CombinedDetector([centerface, mediapipe])
    detectors: dict[str, FaceDetector] = {detector.name: detector for detector in (fused, combined, retinaface, centerface, mediapipe)}
    detectors["fused thorough"] = FusedDetector.profile("thorough", centerface, retinaface_int8)
    return detectors


def text_out(regions: TextRegions) -> list[TextOut]:
    """The JSON form of text regions: box, score, kind (never what they say)."""
    boxes = regions.detections.boxes
    return [
        TextOut(bbox=[round(float(v)) for v in box], confidence=round(float(score), 3), kind=kind)
        for box, score, kind in zip(boxes, regions.scores, regions.kinds, strict=True)
    ]


@lru_cache(maxsize=2)
def load_text_stage(detection_path: Path, recognition_path: Path, max_input_side: int) -> TextStage:
    """The text stage of this process, loaded once and kept for its lifetime."""
    return TextStage(TextDetector(detection_path, max_input_side=max_input_side), TextRecognizer(recognition_path))
