"""Axis-aligned boxes: format conversion, clipping, overlap measures and greedy NMS.

Boxes are (N, 4) arrays of ``x, y, w, h`` (top-left corner, width and height, ``w, h >= 0``);
"corners" are (N, 4) arrays of ``x1, y1, x2, y2``. Every function is pure: numpy in, numpy
out. Floating boxes are computed in their own dtype (float32 stays float32, so results
match code that always did so); integer boxes are computed in float64, where pixel
coordinates, areas and their sums are exact.

An overlap measure whose denominator is 0 (two empty boxes) is 0, never NaN.
"""

from __future__ import annotations

import numpy as np


def as_boxes(boxes: np.ndarray) -> np.ndarray:
    """``boxes`` as a floating (N, 4) array (integers become float64; empty input is (0, 4))."""
    array = np.asarray(boxes)
    if array.size == 0:
        array = array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {array.shape}")
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float64)


def xywh_to_corners(boxes: np.ndarray) -> np.ndarray:
    """``x, y, w, h`` -> ``x1, y1, x2, y2``."""
    boxes = as_boxes(boxes)
    return np.column_stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]])


def corners_to_xywh(corners: np.ndarray) -> np.ndarray:
    """``x1, y1, x2, y2`` -> ``x, y, w, h``."""
    corners = as_boxes(corners)
    return np.column_stack([corners[:, :2], corners[:, 2:] - corners[:, :2]])


def clip_corners(corners: np.ndarray, width: float, height: float) -> np.ndarray:
    """A copy of ``corners`` with x in [0, width] and y in [0, height] (the dtype is kept)."""
    clipped = np.array(corners, copy=True)
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    return clipped


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """The part of each box inside a ``width`` x ``height`` image, as ``x, y, w, h``; a box
    wholly outside becomes zero-sized on the image's edge (the caller decides to drop it)."""
    return corners_to_xywh(clip_corners(xywh_to_corners(boxes), width, height))


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(N,) ``w * h``."""
    boxes = as_boxes(boxes)
    return boxes[:, 2] * boxes[:, 3]


def pairwise_intersection(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(N, M) area shared by box ``i`` of ``boxes_a`` and box ``j`` of ``boxes_b``."""
    return _intersections(xywh_to_corners(boxes_a), xywh_to_corners(boxes_b))


def pairwise_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union: 1 for identical boxes, 0 for disjoint ones."""
    intersection = pairwise_intersection(boxes_a, boxes_b)
    return _iou(intersection, box_areas(boxes_a)[:, None], box_areas(boxes_b)[None, :])


def pairwise_overlap_of_smaller(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over the smaller box's area: 1 when one box lies inside the other,
    however different their sizes (where IoU stays low)."""
    intersection = pairwise_intersection(boxes_a, boxes_b)
    return _overlap_of_smaller(intersection, box_areas(boxes_a)[:, None], box_areas(boxes_b)[None, :])


def greedy_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    *,
    max_overlap_of_smaller: float | None = None,
    max_kept: int | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression; returns the kept indices, highest score first.

    Boxes are visited by descending score (equal scores in input order). Each box not yet
    suppressed is kept and suppresses every later box whose IoU with it is above
    ``iou_threshold`` or, when ``max_overlap_of_smaller`` is given, whose intersection over
    the smaller of the two areas is above that (a box nested in a kept one). With
    ``max_kept`` the search stops once that many are kept (the same first ``max_kept`` as
    without it).
    """
    boxes = as_boxes(boxes)
    scores = np.asarray(scores).reshape(-1)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {scores.shape}")
    corners = xywh_to_corners(boxes)
    areas = box_areas(boxes)
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size and (max_kept is None or len(kept) < max_kept):
        best, rest = order[0], order[1:]
        kept.append(int(best))
        intersection = _intersections(corners[best : best + 1], corners[rest])[0]
        survives = _iou(intersection, areas[best], areas[rest]) <= iou_threshold
        if max_overlap_of_smaller is not None:
            survives &= _overlap_of_smaller(intersection, areas[best], areas[rest]) <= max_overlap_of_smaller
        order = rest[survives]
    return np.array(kept, dtype=np.intp)


def _intersections(corners_a: np.ndarray, corners_b: np.ndarray) -> np.ndarray:
    top_left = np.maximum(corners_a[:, None, :2], corners_b[None, :, :2])
    bottom_right = np.minimum(corners_a[:, None, 2:], corners_b[None, :, 2:])
    return np.prod((bottom_right - top_left).clip(min=0), axis=2)


def _iou(intersection: np.ndarray, areas_a: np.ndarray, areas_b: np.ndarray) -> np.ndarray:
    return _ratio(intersection, areas_a + areas_b - intersection)


def _overlap_of_smaller(intersection: np.ndarray, areas_a: np.ndarray, areas_b: np.ndarray) -> np.ndarray:
    return _ratio(intersection, np.minimum(areas_a, areas_b))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    numerator, denominator = np.broadcast_arrays(numerator, denominator)
    return np.divide(numerator, denominator, out=np.zeros(numerator.shape, numerator.dtype), where=denominator > 0)
