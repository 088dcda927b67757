"""Box geometry and greedy NMS (shared/vision/boxes.py): tables of box pairs and box sets."""

import numpy as np
import pytest

from shared.vision.boxes import (
    box_areas,
    clip_boxes,
    corners_to_xywh,
    greedy_nms,
    pairwise_intersection,
    pairwise_iou,
    pairwise_overlap_of_smaller,
    xywh_to_corners,
)

# (box a, box b as x, y, w, h), intersection, IoU, intersection over the smaller area
PAIRS = {
    "identical": ([0, 0, 10, 10], [0, 0, 10, 10], 100, 1.0, 1.0),
    "half overlap": ([0, 0, 10, 10], [5, 0, 10, 10], 50, 50 / 150, 0.5),
    "corner overlap": ([0, 0, 10, 10], [5, 5, 10, 10], 25, 25 / 175, 0.25),
    "disjoint": ([0, 0, 10, 10], [20, 20, 5, 5], 0, 0.0, 0.0),
    "touching edges": ([0, 0, 10, 10], [10, 0, 10, 10], 0, 0.0, 0.0),
    "nested": ([0, 0, 100, 100], [10, 10, 20, 20], 400, 400 / 10_000, 1.0),
    "same area, other shape": ([0, 0, 10, 10], [0, 0, 20, 5], 50, 50 / 150, 0.5),
    "empty boxes": ([3, 3, 0, 0], [3, 3, 0, 0], 0, 0.0, 0.0),
}


@pytest.mark.parametrize(("a", "b", "intersection", "iou", "overlap"), PAIRS.values(), ids=PAIRS.keys())
def test_overlap_measures_of_a_pair(a, b, intersection, iou, overlap):
    for first, second in ((a, b), (b, a)):  # every measure is symmetric
        first, second = np.array([first], np.float32), np.array([second], np.float32)
        assert pairwise_intersection(first, second)[0, 0] == pytest.approx(intersection)
        assert pairwise_iou(first, second)[0, 0] == pytest.approx(iou)
        assert pairwise_overlap_of_smaller(first, second)[0, 0] == pytest.approx(overlap)


def test_pairwise_measures_have_one_row_per_box_of_the_first_set():
    a = np.array([[0, 0, 10, 10], [20, 20, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 10, 10]])
    assert pairwise_iou(a, b) == pytest.approx(np.array([[1, 1 / 3, 0], [0, 0, 1]]))
    assert pairwise_iou(a, np.zeros((0, 4))).shape == (2, 0)
    assert pairwise_iou(np.zeros((0, 4)), b).shape == (0, 3)


@pytest.mark.parametrize(
    ("boxes", "dtype"),
    [
        (np.array([[1, 2, 3, 4]], np.float32), np.float32),  # float32 stays float32
        (np.array([[1, 2, 3, 4]], np.float64), np.float64),
        (np.array([[1, 2, 3, 4]], np.int64), np.float64),  # integers are computed exactly in float64
        ([[1, 2, 3, 4]], np.float64),
    ],
)
def test_corners_round_trip_and_keep_a_floating_dtype(boxes, dtype):
    corners = xywh_to_corners(boxes)
    assert corners.tolist() == [[1, 2, 4, 6]] and corners.dtype == dtype
    assert corners_to_xywh(corners).tolist() == [[1, 2, 3, 4]]
    assert box_areas(boxes).tolist() == [12]


def test_clipping_keeps_the_part_inside_the_image():
    boxes = np.array([[-10, -10, 30, 30], [95, 95, 20, 20], [200, 200, 5, 5]], np.float32)
    assert clip_boxes(boxes, 100, 100).tolist() == [[0, 0, 20, 20], [95, 95, 5, 5], [100, 100, 0, 0]]


@pytest.mark.parametrize(
    "boxes",
    [np.zeros((3,)), np.zeros((2, 3)), np.zeros((2, 4, 1))],
    ids=["flat", "three columns", "three dimensions"],
)
def test_boxes_of_the_wrong_shape_are_refused_with_the_shape_seen(boxes):
    with pytest.raises(ValueError, match=r"shape \(N, 4\), got"):
        pairwise_iou(boxes, boxes)


# GIVEN boxes and scores, WHEN suppressed, THEN these indices are kept, highest score first
NMS_CASES = {
    "empty input": ([], [], {}, []),
    "one box": ([[0, 0, 10, 10]], [0.5], {}, [0]),
    "overlapping: the best stays": ([[10, 10, 50, 50], [12, 12, 50, 50], [200, 10, 40, 40]], [0.6, 0.9, 0.5], {}, [1, 2]),
    "disjoint: all kept, by score": ([[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10]], [0.2, 0.9, 0.5], {}, [1, 2, 0]),
    "identical boxes, equal scores: the first": ([[0, 0, 10, 10]] * 3, [0.7, 0.7, 0.7], {}, [0]),
    "equal scores: input order": ([[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10]], [0.5, 0.5, 0.5], {}, [0, 1, 2]),
    "IoU equal to the threshold: kept": ([[0, 0, 10, 10], [0, 0, 10, 5]], [0.9, 0.8], {}, [0, 1]),  # IoU 0.5
    "nested, small IoU: kept": ([[0, 0, 100, 100], [10, 10, 20, 20]], [0.9, 0.8], {}, [0, 1]),
    "nested, overlap of smaller limited: dropped": (
        [[0, 0, 100, 100], [10, 10, 20, 20]],
        [0.9, 0.8],
        {"max_overlap_of_smaller": 0.8},
        [0],
    ),
    "nested box scoring higher: the outer dropped": (
        [[0, 0, 100, 100], [10, 10, 20, 20]],
        [0.8, 0.9],
        {"max_overlap_of_smaller": 0.8},
        [1],
    ),
    "chain: a suppressed box suppresses nothing": (
        [[0, 0, 10, 10], [3, 0, 10, 10], [6, 0, 10, 10]],
        [0.9, 0.8, 0.7],
        {},
        [0, 2],  # IoU 0.54 next door, 0.25 ends
    ),
    "max_kept caps the best": ([[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10]], [0.2, 0.9, 0.5], {"max_kept": 2}, [1, 2]),
    "max_kept 0": ([[0, 0, 10, 10]], [0.9], {"max_kept": 0}, []),
}


@pytest.mark.parametrize(("boxes", "scores", "options", "kept"), NMS_CASES.values(), ids=NMS_CASES.keys())
def test_greedy_nms(boxes, scores, options, kept):
    result = greedy_nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), 0.5, **options)
    assert result.dtype == np.intp
    assert result.tolist() == kept


@pytest.mark.parametrize(("threshold", "kept"), [(0.3, [0]), (0.34, [0, 1])])
def test_nms_threshold_is_on_intersection_over_union(threshold, kept):
    boxes = np.array([[0, 0, 10, 10], [5, 0, 10, 10]])  # IoU 1/3, integer boxes
    assert greedy_nms(boxes, np.array([0.9, 0.8]), threshold).tolist() == kept


def test_nms_refuses_scores_that_do_not_match_the_boxes():
    with pytest.raises(ValueError, match=r"scores must have shape \(2,\), got \(3,\)"):
        greedy_nms(np.zeros((2, 4)), np.zeros(3), 0.5)
