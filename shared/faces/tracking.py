"""Faces across video frames: a face the detector misses for a few frames (motion blur, a turn
of the head) stays covered where its motion says it is. Pure numpy, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.faces.detections import FaceDetections
from shared.vision.boxes import pairwise_iou


@dataclass
class Track:
    box: np.ndarray  # x, y, w, h of the last detection or prediction
    velocity: np.ndarray  # dx, dy, dw, dh per frame
    score: float
    missed: int = 0  # frames since it was last detected


class FaceTracker:
    """Greedy IoU matching of each frame's detections to the tracks of the frames before.

    A matched track takes the detection's box and updates its velocity (smoothed); an
    unmatched track coasts along its velocity, its box grown by ``growth`` per missed frame
    (the face may have moved more than predicted), for at most ``max_missed`` frames. What
    ``update`` returns is what the frame must cover: its detections and the coasting tracks.
    """

    def __init__(self, max_missed: int = 5, match_iou: float = 0.2, smoothing: float = 0.5, growth: float = 0.05) -> None:
        self.max_missed = max_missed
        self.match_iou = match_iou
        self.smoothing = smoothing
        self.growth = growth
        self.tracks: list[Track] = []

    def update(self, detections: FaceDetections, width: int, height: int) -> FaceDetections:
        predicted = np.array([t.box + t.velocity for t in self.tracks], np.float32).reshape(-1, 4)
        iou = pairwise_iou(predicted, detections.boxes)
        matched_tracks: set[int] = set()
        matched_detections: set[int] = set()
        for flat in np.argsort(-iou, axis=None):
            track_index, detection_index = np.unravel_index(flat, iou.shape)
            if iou[track_index, detection_index] < self.match_iou:
                break
            if track_index in matched_tracks or detection_index in matched_detections:
                continue
            matched_tracks.add(int(track_index))
            matched_detections.add(int(detection_index))
            track = self.tracks[track_index]
            new_box = detections.boxes[detection_index].astype(np.float32)
            step = (new_box - track.box) / (track.missed + 1)
            track.velocity = self.smoothing * step + (1 - self.smoothing) * track.velocity
            track.box, track.score, track.missed = new_box, float(detections.scores[detection_index]), 0
        kept: list[Track] = []
        coasting_boxes, coasting_scores = [], []
        for index, track in enumerate(self.tracks):
            if index in matched_tracks:
                kept.append(track)
                continue
            track.missed += 1
            if track.missed > self.max_missed:
                continue
            box = predicted[index].copy()
            grow = box[2:] * self.growth
            box[:2] -= grow / 2
            box[2:] += grow
            track.box = box
            if _inside(box, width, height):
                kept.append(track)
                coasting_boxes.append(box)
                coasting_scores.append(track.score)
        for index in range(len(detections)):
            if index not in matched_detections:
                kept.append(Track(detections.boxes[index].astype(np.float32), np.zeros(4, np.float32), float(detections.scores[index])))
        self.tracks = kept
        if not coasting_boxes:
            return detections
        coasting = FaceDetections(np.array(coasting_boxes, np.float32), np.array(coasting_scores, np.float32))
        return detections.concat(coasting).clipped(width, height)


def _inside(box: np.ndarray, width: int, height: int) -> bool:
    """Whether any of the box is still in the frame."""
    x, y, w, h = box
    return x + w > 0 and y + h > 0 and x < width and y < height and w > 0 and h > 0
