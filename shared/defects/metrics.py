"""Detection and classification metrics (pure numpy): box matching, VOC average precision, confusion.

Boxes are ``x, y, w, h`` arrays as in ``shared.vision.boxes``. Matching follows the Pascal VOC
devkit: detections are visited by descending score; each finds the ground-truth box it overlaps
most, and is a true positive when that IoU is at least the threshold and that box is not yet
matched (a duplicate detection is a false positive). Coordinates are continuous (no VOC "+1").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.vision.boxes import pairwise_iou


def match_detections(detected: np.ndarray, scores: np.ndarray, truth: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per detection, whether it is a true positive (in the input order), and per ground-truth box
    whether some detection matched it."""
    detected = np.asarray(detected, np.float64).reshape(-1, 4)
    truth = np.asarray(truth, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if scores.shape[0] != detected.shape[0]:
        raise ValueError(f"scores must have shape ({detected.shape[0]},), got {scores.shape}")
    hit = np.zeros(len(detected), bool)
    matched = np.zeros(len(truth), bool)
    if len(detected) == 0 or len(truth) == 0:
        return hit, matched
    ious = pairwise_iou(detected, truth)
    for index in np.argsort(-scores, kind="stable"):
        best = int(np.argmax(ious[index]))
        if ious[index, best] >= iou_threshold and not matched[best]:
            hit[index] = True
            matched[best] = True
    return hit, matched


def voc_average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision-recall curve with VOC's all-point interpolation (VOC 2010+): the
    precision at each recall is the best precision at that recall or beyond."""
    recall = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    precision = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


@dataclass(frozen=True)
class ImageBoxes:
    """One image's boxes of one class (ground truth: ``scores`` is ignored)."""

    boxes: np.ndarray  # (N, 4) x, y, w, h
    scores: np.ndarray  # (N,)


def average_precision(detections: Sequence[ImageBoxes], truths: Sequence[ImageBoxes], iou_threshold: float = 0.5) -> float:
    """VOC AP of one class over a set of images (``detections[i]`` and ``truths[i]`` belong to
    image ``i``); NaN when the class has no ground-truth box."""
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} detection lists for {len(truths)} images")
    n_truth = sum(len(truth.boxes) for truth in truths)
    if n_truth == 0:
        return float("nan")
    all_scores, all_hits = [], []
    for detected, truth in zip(detections, truths, strict=True):
        hit, _ = match_detections(detected.boxes, detected.scores, truth.boxes, iou_threshold)
        all_scores.append(np.asarray(detected.scores, np.float64).reshape(-1))
        all_hits.append(hit)
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    hits = np.concatenate(all_hits) if all_hits else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")
    true_positives = np.cumsum(hits[order])
    false_positives = np.cumsum(~hits[order])
    recall = true_positives / n_truth
    precision = true_positives / np.maximum(true_positives + false_positives, np.finfo(np.float64).eps)
    return voc_average_precision(recall, precision)


@dataclass(frozen=True)
class MatchCounts:
    """Ground-truth boxes matched (of all) and detections that match (of all); sums add up."""

    matched_truths: int = 0
    truths: int = 0
    true_detections: int = 0
    detections: int = 0

    def __add__(self, other: MatchCounts) -> MatchCounts:
        return MatchCounts(
            self.matched_truths + other.matched_truths,
            self.truths + other.truths,
            self.true_detections + other.true_detections,
            self.detections + other.detections,
        )

    @property
    def recall(self) -> float:
        """Share of ground-truth boxes matched (1.0 when there are none)."""
        return self.matched_truths / self.truths if self.truths else 1.0

    @property
    def precision(self) -> float:
        """Share of detections that match (1.0 when there are none)."""
        return self.true_detections / self.detections if self.detections else 1.0


def count_matches(detections: Sequence[ImageBoxes], truths: Sequence[ImageBoxes], iou_threshold: float) -> MatchCounts:
    """Matches over a set of images (every detection given counts: filter them by score first)."""
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} detection lists for {len(truths)} images")
    total = MatchCounts()
    for detected, truth in zip(detections, truths, strict=True):
        hit, found = match_detections(detected.boxes, detected.scores, truth.boxes, iou_threshold)
        total += MatchCounts(int(found.sum()), len(found), int(hit.sum()), len(hit))
    return total


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], n_classes: int) -> np.ndarray:
    """(n, n) counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix
