"""Detection metrics: VOC matching, all-point average precision, counts and the confusion matrix."""

import math

import numpy as np
import pytest

from shared.defects.metrics import (
    ImageBoxes,
    MatchCounts,
    average_precision,
    confusion_matrix,
    count_matches,
    match_detections,
    voc_average_precision,
)

GT = (0, 0, 10, 10)
HIT = (1, 0, 10, 10)  # IoU 9/11 with GT
NEAR = (5, 0, 10, 10)  # IoU 1/3 with GT
MISS = (50, 50, 10, 10)


def _image(*detections):
    """ImageBoxes from (box, score) pairs."""
    boxes = np.array([box for box, _ in detections], np.float64).reshape(-1, 4)
    return ImageBoxes(boxes, np.array([score for _, score in detections], np.float64))


def _truth(*boxes):
    return ImageBoxes(np.array(boxes, np.float64).reshape(-1, 4), np.ones(len(boxes)))


@pytest.mark.parametrize(
    ("recall", "precision", "expected"),
    [
        ([1.0], [1.0], 1.0),
        ([0.5, 1.0], [1.0, 0.5], 0.75),
        ([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3], 0.5 + 0.5 * 2 / 3),  # a dip is interpolated away
        ([0.2, 0.4, 0.4, 0.8], [1.0, 1.0, 2 / 3, 0.5], 0.2 + 0.2 + 0.4 * 0.5),  # recall never reaches 1
        ([0.0, 0.5], [0.0, 0.5], 0.25),
        ([], [], 0.0),
    ],
)
def test_voc_all_point_interpolation(recall, precision, expected):
    assert voc_average_precision(np.array(recall), np.array(precision)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("detections", "truths", "expected"),
    [
        # one image each unless stated; detections as (box, score)
        ([_image((HIT, 0.9))], [_truth(GT)], 1.0),
        ([_image((MISS, 0.9), (HIT, 0.8))], [_truth(GT)], 0.5),  # a better-scored false positive first
        ([_image((HIT, 0.9), (MISS, 0.8))], [_truth(GT)], 1.0),  # a false positive after full recall costs nothing
        ([_image((HIT, 0.9), ((30, 0, 10, 10), 0.7), (MISS, 0.8))], [_truth(GT, (30, 0, 10, 10))], 0.5 + 0.5 * 2 / 3),
        ([_image((HIT, 0.9))], [_truth(GT, (30, 0, 10, 10))], 0.5),  # half the boxes never found
        ([_image((HIT, 0.9), (HIT, 0.8))], [_truth(GT)], 1.0),  # a duplicate is a false positive, after recall 1
        ([_image((HIT, 0.7), (HIT, 0.8))], [_truth(GT)], 1.0),  # the better-scored duplicate is the hit
        ([_image((NEAR, 0.9))], [_truth(GT)], 0.0),  # IoU 1/3 < 0.5
        ([_image()], [_truth(GT)], 0.0),
        ([_image((HIT, 0.6)), _image((MISS, 0.9))], [_truth(GT), _truth((20, 20, 5, 5))], 0.25),  # ranked across images
    ],
)
def test_average_precision_known_values(detections, truths, expected):
    assert average_precision(detections, truths, 0.5) == pytest.approx(expected)


def test_average_precision_of_a_class_without_boxes_is_nan():
    assert math.isnan(average_precision([_image((HIT, 0.9))], [_truth()], 0.5))


def test_average_precision_needs_one_list_per_image():
    with pytest.raises(ValueError, match="1 detection lists for 2 images"):
        average_precision([_image()], [_truth(GT), _truth(GT)])


@pytest.mark.parametrize(
    ("box", "threshold", "hit"),
    [
        (HIT, 0.5, True),
        (NEAR, 0.3, True),  # IoU exactly 1/3
        (NEAR, 0.34, False),
        (NEAR, 0.5, False),
        (MISS, 0.01, False),
        (GT, 1.0, True),
    ],
)
def test_match_detections_threshold_is_inclusive(box, threshold, hit):
    hits, matched = match_detections(np.array([box]), np.array([0.5]), np.array([GT]), threshold)
    assert hits.tolist() == [hit]
    assert matched.tolist() == [hit]


def test_a_detection_takes_its_best_overlap_even_when_already_matched():
    # VOC devkit: the second detection's best box is GT (taken), so it is a false positive even
    # though it also overlaps the second box enough
    truth = np.array([GT, (6, 0, 10, 10)])
    hits, matched = match_detections(np.array([GT, (2, 0, 10, 10)]), np.array([0.9, 0.8]), truth, 0.3)
    assert hits.tolist() == [True, False]
    assert matched.tolist() == [True, False]


def test_match_detections_checks_scores():
    with pytest.raises(ValueError, match="scores must have shape"):
        match_detections(np.array([GT]), np.array([0.5, 0.4]), np.array([GT]), 0.5)


def test_count_matches_recall_and_precision():
    counts = count_matches(
        [_image((HIT, 0.9), (MISS, 0.5)), _image()],
        [_truth(GT), _truth((0, 0, 4, 4))],
        0.5,
    )
    assert counts == MatchCounts(matched_truths=1, truths=2, true_detections=1, detections=2)
    assert (counts.recall, counts.precision) == (0.5, 0.5)
    assert (MatchCounts().recall, MatchCounts().precision) == (1.0, 1.0)
    assert counts + counts == MatchCounts(2, 4, 2, 4)


def test_confusion_matrix_rows_are_truth():
    matrix = confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
