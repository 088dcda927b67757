"""A validated set of face boxes (numpy arrays), with the few operations detectors need."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.vision.boxes import clip_corners, corners_to_xywh, greedy_nms, xywh_to_corners

#: With ``drop_nested``, a box whose area lies more than this fraction inside a kept one is dropped.
NESTED_FRACTION = 0.8


@dataclass(frozen=True)
class FaceDetections:
    """``boxes``: (N, 4) float32 ``x, y, w, h`` in pixels; ``scores``: (N,) in [0, 1]."""

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (N, 4), got {self.boxes.shape}")
        if self.scores.shape != (self.boxes.shape[0],):
            raise ValueError(f"scores must have shape ({self.boxes.shape[0]},), got {self.scores.shape}")

    @classmethod
    def empty(cls) -> FaceDetections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def from_corners(cls, corners: np.ndarray, scores: np.ndarray) -> FaceDetections:
        """From (N, 4) ``x1, y1, x2, y2``."""
        boxes = corners_to_xywh(np.asarray(corners, np.float32).reshape(-1, 4))
        return cls(boxes, np.asarray(scores, np.float32).reshape(-1))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def corners(self) -> np.ndarray:
        return xywh_to_corners(self.boxes)

    def above(self, min_score: float) -> FaceDetections:
        keep = self.scores >= min_score
        return FaceDetections(self.boxes[keep], self.scores[keep])

    def clipped(self, width: int, height: int) -> FaceDetections:
        """The part of each box inside the image; boxes left under 1 px wide or high are dropped."""
        clipped = FaceDetections.from_corners(clip_corners(self.corners, width, height), self.scores)
        keep = (clipped.boxes[:, 2] >= 1) & (clipped.boxes[:, 3] >= 1)
        return FaceDetections(clipped.boxes[keep], clipped.scores[keep])

    def concat(self, other: FaceDetections) -> FaceDetections:
        return FaceDetections(np.vstack([self.boxes, other.boxes]), np.concatenate([self.scores, other.scores]))

    def non_max_suppressed(self, iou_threshold: float, drop_nested: bool = True) -> FaceDetections:
        """Greedy NMS, highest score first; with ``drop_nested`` a box mostly
        (``NESTED_FRACTION``) inside a kept one is dropped too."""
        nested = NESTED_FRACTION if drop_nested else None
        keep = greedy_nms(self.boxes, self.scores, iou_threshold, max_overlap_of_smaller=nested)
        return FaceDetections(self.boxes[keep], self.scores[keep])
