"""A validated set of face boxes (numpy arrays), with the few operations detectors need."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
        corners = np.asarray(corners, np.float32).reshape(-1, 4)
        boxes = np.column_stack([corners[:, :2], corners[:, 2:] - corners[:, :2]])
        return cls(boxes.astype(np.float32), np.asarray(scores, np.float32).reshape(-1))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def corners(self) -> np.ndarray:
        return np.column_stack([self.boxes[:, :2], self.boxes[:, :2] + self.boxes[:, 2:]])

    def above(self, min_score: float) -> FaceDetections:
        keep = self.scores >= min_score
        return FaceDetections(self.boxes[keep], self.scores[keep])

    def clipped(self, width: int, height: int) -> FaceDetections:
        corners = self.corners
        corners[:, [0, 2]] = corners[:, [0, 2]].clip(0, width)
        corners[:, [1, 3]] = corners[:, [1, 3]].clip(0, height)
        clipped = FaceDetections.from_corners(corners, self.scores)
        keep = (clipped.boxes[:, 2] >= 1) & (clipped.boxes[:, 3] >= 1)
        return FaceDetections(clipped.boxes[keep], clipped.scores[keep])

    def concat(self, other: FaceDetections) -> FaceDetections:
        return FaceDetections(np.vstack([self.boxes, other.boxes]), np.concatenate([self.scores, other.scores]))

    def non_max_suppressed(self, iou_threshold: float, drop_nested: bool = True) -> FaceDetections:
        """Greedy NMS, highest score first; with ``drop_nested`` a box mostly (80%) inside a
        kept one is dropped too."""
        if len(self) <= 1:
            return self
        corners = self.corners
        areas = self.boxes[:, 2] * self.boxes[:, 3]
        order = np.argsort(-self.scores)
        keep: list[int] = []
        while order.size:
            best, rest = order[0], order[1:]
            keep.append(int(best))
            top_left = np.maximum(corners[best, :2], corners[rest, :2])
            bottom_right = np.minimum(corners[best, 2:], corners[rest, 2:])
            intersection = np.prod((bottom_right - top_left).clip(min=0), axis=1)
            iou = intersection / (areas[best] + areas[rest] - intersection + 1e-9)
            inside = intersection / (np.minimum(areas[best], areas[rest]) + 1e-9)
            order = rest[(iou <= iou_threshold) & ((inside <= 0.8) | (not drop_nested))]
        keep_index = np.array(keep)
        return FaceDetections(self.boxes[keep_index], self.scores[keep_index])
