"""Anonymization of detected faces: blur, pixelate or solid fill over an enlarged region."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from shared.faces.detections import FaceDetections
from shared.vision.boxes import clip_corners

Mode = Literal["blur", "pixelate", "solid"]
Shape = Literal["ellipse", "rectangle"]

BOX_COLOUR = (0, 255, 0)  # the seed's green frames


@dataclass(frozen=True)
class AnonymizeStyle:
    mode: Mode = "blur"
    shape: Shape = "ellipse"
    margin: float = 0.3  # each side pushed out by this fraction of the face box (hair, ears, chin)
    draw_boxes: bool = False


def covered_regions(detections: FaceDetections, width: int, height: int, margin: float) -> np.ndarray:
    """(N, 4) int ``x1, y1, x2, y2``: each face box enlarged by ``margin`` per side, clipped."""
    if not len(detections):
        return np.zeros((0, 4), np.int32)
    grow = detections.boxes[:, 2:] * margin
    corners = detections.corners
    corners[:, :2] -= grow
    corners[:, 2:] += grow
    return clip_corners(np.round(corners), width, height).astype(np.int32)


def strength(face_width: float, face_height: float, mode: Mode) -> int:
    """Blur radius (or pixel-block size) growing with the face: a quarter of its longer side."""
    if mode == "solid":
        return 0
    return max(3, round(max(face_width, face_height) / 4))


def region_mask(width: int, height: int, shape: Shape) -> np.ndarray:
    if shape == "rectangle":
        return np.ones((height, width), bool)
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (((width - 1) / 2, (height - 1) / 2), (float(width), float(height)), 0.0), 1, -1)
    return mask.astype(bool)


def coverage_mask(regions: np.ndarray, width: int, height: int, shape: Shape) -> np.ndarray:
    """Which pixels of the image the anonymization replaces."""
    mask = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in regions:
        if x2 > x1 and y2 > y1:
            mask[y1:y2, x1:x2] |= region_mask(x2 - x1, y2 - y1, shape)
    return mask


def _replacement(roi: np.ndarray, mode: Mode, radius: int) -> np.ndarray:
    if mode == "solid":
        return np.zeros_like(roi)
    if mode == "pixelate":
        height, width = roi.shape[:2]
        small = cv2.resize(roi, (max(1, width // radius), max(1, height // radius)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    kernel = 2 * radius + 1
    return cv2.stackBlur(cv2.stackBlur(roi, (kernel, kernel)), (kernel, kernel))


def anonymize(rgb: np.ndarray, detections: FaceDetections, style: AnonymizeStyle) -> tuple[np.ndarray, list[int]]:
    """A copy of the image with every face replaced; returns it and each face's strength."""
    height, width = rgb.shape[:2]
    output = rgb.copy()
    regions = covered_regions(detections, width, height, style.margin)
    strengths = []
    for (x1, y1, x2, y2), (_, _, face_width, face_height) in zip(regions, detections.boxes, strict=True):
        radius = strength(face_width, face_height, style.mode)
        strengths.append(radius)
        if x2 <= x1 or y2 <= y1:
            continue
        roi = output[y1:y2, x1:x2]
        replaced = _replacement(roi, style.mode, max(radius, 1))
        mask = region_mask(x2 - x1, y2 - y1, style.shape)
        roi[mask] = replaced[mask]
    if style.draw_boxes:
        for x1, y1, x2, y2 in np.round(detections.corners).astype(int):
            cv2.rectangle(output, (int(x1), int(y1)), (int(x2), int(y2)), BOX_COLOUR, 2)
    return output, strengths
