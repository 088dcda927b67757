"""The defect model's training augmentation: whatever it does to an image, the boxes still mark
what the image shows (tested on drawn rectangles), and a mosaic's class target is its parts' areas."""

import numpy as np
import pytest

from tools.defects.augment import MIN_SIDE, MIN_VISIBLE, mosaic, reshape, still_shown

SIZE = 200
DARK, BRIGHT = 20, 230


def _drawn(boxes: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dark image with each box (x, y, w, h) painted bright, its boxes and labels 0, 1, ..."""
    image = np.full((SIZE, SIZE), DARK, np.uint8)
    for x, y, w, h in boxes:
        image[y : y + h, x : x + w] = BRIGHT
    return image, np.array(boxes, np.float32).reshape(-1, 4), np.arange(len(boxes))


def _inside(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    x, y, w, h = np.round(box).astype(int)
    return image[y : y + h, x : x + w]


@pytest.mark.parametrize("seed", range(12))
def test_reshape_moves_the_boxes_with_the_image(seed):
    image, boxes, labels = _drawn([(30, 40, 60, 20), (120, 110, 25, 70)])
    moved, moved_boxes, moved_labels = reshape(image, boxes, labels, np.random.default_rng(seed))
    assert moved.shape == (SIZE, SIZE)
    assert len(moved_boxes) == len(moved_labels) >= 1
    painted = np.zeros(moved.shape, bool)
    for box in moved_boxes:
        x, y, w, h = np.round(box).astype(int)
        assert _inside(moved, box)[1:-1, 1:-1].min() > 200  # the box lies on bright pixels
        painted[max(0, y - 2) : y + h + 2, max(0, x - 2) : x + w + 2] = True
    assert (moved[~painted] > 100).sum() == 0  # and no bright pixel lies outside the boxes


def test_a_mosaic_tiles_four_windows_and_shares_their_area():
    parts = [(np.full((SIZE, SIZE), value, np.uint8), np.zeros((0, 4), np.float32), np.zeros(0, np.int64)) for value in (10, 20, 30, 40)]
    image, boxes, labels, shares = mosaic(parts, np.random.default_rng(3))
    assert image.shape == (SIZE, SIZE) and len(boxes) == len(labels) == 0
    assert (image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]) == (10, 20, 30, 40)
    assert shares.sum() == pytest.approx(1.0)
    assert shares.tolist() == pytest.approx([(image == value).mean() for value in (10, 20, 30, 40)])


@pytest.mark.parametrize("seed", range(16))
def test_a_mosaic_keeps_the_boxes_that_show_clipped_to_their_window(seed):
    region = _drawn([(0, 0, SIZE, SIZE)])  # a defect over the whole plate: always seen through its window
    small = _drawn([(90, 90, 20, 20)])  # 400 px: kept where at least 140 of them show
    image, boxes, labels, _ = mosaic([region, small, small, small], np.random.default_rng(seed))
    assert labels.tolist() == [0] * len(boxes)
    split_x, split_y = int(boxes[0][2]), int(boxes[0][3])  # the region's box is exactly the first window
    assert boxes[0][:2].tolist() == [0, 0] and (image[:split_y, :split_x] == BRIGHT).all()
    windows = [
        (slice(0, split_y), slice(split_x, SIZE)),
        (slice(split_y, SIZE), slice(0, split_x)),
        (slice(split_y, SIZE), slice(split_x, SIZE)),
    ]
    kept = boxes[1:]
    for rows, columns in windows:
        bright = image[rows, columns] == BRIGHT
        in_window = [box for box in kept if rows.start <= box[1] < rows.stop and columns.start <= box[0] < columns.stop]
        if bright.sum() >= 140 and bright.any(0).sum() >= 4 and bright.any(1).sum() >= 4:
            (box,) = in_window  # the defect that shows is marked, by exactly its bright pixels
            assert (_inside(image, box) == BRIGHT).all() and _inside(image, box).size == (image == BRIGHT)[rows, columns].sum()
        else:
            assert in_window == []  # a sliver of it is not


def test_a_cut_box_is_kept_when_enough_of_it_shows_and_it_is_not_a_sliver():
    # uncut: 40 x 50, 40 x 50, 8 x 50, 8 x 50; cut: all of it, under MIN_VISIBLE of it, half, 3/8 but 3 px wide
    area = np.array([2000.0, 2000.0, 400.0, 400.0])
    sides = np.array([[40, 50], [40, 50 * MIN_VISIBLE - 1], [MIN_SIDE, 50], [MIN_SIDE - 1, 50]], np.float32)
    assert still_shown(sides, area).tolist() == [True, False, True, False]
    # a zoom by 2 doubles the sides (and the sliver is then wide enough)
    assert still_shown(sides * 2, area, scale=2.0).tolist() == [True, False, True, True]
    # a region defect seen through a window is kept however little of it shows, unless it is a sliver
    region = np.array([False, True, False, True])
    assert still_shown(sides, area, region=region).tolist() == [True, True, True, False]
