"""Training augmentation of NEU-DET images (numpy and OpenCV only, so the suite tests it without torch).

Every function takes a grey image (H x W), its boxes (N x 4: ``x, y, w, h`` pixels) and their class
indices, and returns them changed alike: the boxes always describe what the image shows.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_VISIBLE = 0.35  # a box cut by a crop or a window is kept when this share of it still shows,
MIN_SIDE = 4  # and both its sides are this many pixels or more


def augment(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """A random dihedral flip, zoom-in crop and photometric jitter; boxes (x, y, w, h) follow."""
    image, boxes, labels = reshape(image, boxes, labels, rng)
    return jitter(image, boxes, labels, rng)


def reshape(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """A random dihedral flip and zoom-in crop; boxes (x, y, w, h) follow."""
    size = image.shape[0]
    corners = np.column_stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]]).astype(np.float32)
    if rng.random() < 0.5:  # horizontal flip
        image = image[:, ::-1]
        corners[:, [0, 2]] = size - corners[:, [2, 0]]
    if rng.random() < 0.5:  # vertical flip
        image = image[::-1]
        corners[:, [1, 3]] = size - corners[:, [3, 1]]
    if rng.random() < 0.5:  # transpose
        image = image.T
        corners = corners[:, [1, 0, 3, 2]]
    if rng.random() < 0.6:  # zoom-in crop, no border
        scale = rng.uniform(1.0, 1.3)
        crop = size / scale
        x0, y0 = rng.uniform(0, size - crop, 2)
        matrix = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float32)
        image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size), flags=cv2.INTER_LINEAR)
        area = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
        corners = ((corners - [x0, y0, x0, y0]) * scale).clip(0, size)
        keep = still_shown(corners[:, 2:] - corners[:, :2], area, scale)
        corners, labels = corners[keep], labels[keep]
    boxes = np.column_stack([corners[:, :2], corners[:, 2:] - corners[:, :2]])
    return np.ascontiguousarray(image), boxes, labels


def still_shown(sides: np.ndarray, area: np.ndarray, scale: float = 1.0, region: np.ndarray | None = None) -> np.ndarray:
    """Which cut boxes to keep: their ``sides`` (N x 2, after a zoom by ``scale``) show ``MIN_VISIBLE`` of
    their uncut ``area`` (or ``region`` is true for them), and both sides are ``MIN_SIDE`` px or more."""
    shows = sides.prod(1) / scale**2 >= MIN_VISIBLE * area
    if region is not None:
        shows |= region
    return shows & (sides.min(1) >= MIN_SIDE)


def jitter(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Brightness and contrast jitter and, sometimes, mild Gaussian noise."""
    image = image.astype(np.float32) * rng.uniform(0.75, 1.25) + rng.uniform(-25, 25)
    if rng.random() < 0.3:
        image += rng.normal(0, rng.uniform(1, 6), image.shape).astype(np.float32)
    return image.clip(0, 255), boxes, labels


def mosaic(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Four images' windows, at their own scale, tiled around a random point (YOLO's mosaic without the resize).

    Each part (image, boxes, labels) fills one quadrant with a random window of itself; its boxes are
    clipped to the window and kept when they are 4 px or more and at least 35% of them shows or they
    span half the window both ways (a region defect seen through the window).
    Returns the image, the boxes and labels, and each part's share of the area (the soft class target).
    """
    size = parts[0][0].shape[0]
    split_x, split_y = (int(v) for v in rng.integers(size // 4, 3 * size // 4 + 1, 2))
    quadrants = [(0, 0, split_x, split_y), (split_x, 0, size, split_y), (0, split_y, split_x, size), (split_x, split_y, size, size)]
    image = np.empty((size, size), np.float32)
    all_boxes, all_labels, shares = [], [], []
    for (x0, y0, x1, y1), (source, boxes, labels) in zip(quadrants, parts, strict=True):
        width, height = x1 - x0, y1 - y0
        left, top = int(rng.integers(0, size - width + 1)), int(rng.integers(0, size - height + 1))
        image[y0:y1, x0:x1] = source[top : top + height, left : left + width]
        corners = np.column_stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]]).astype(np.float32)
        corners = np.clip(corners - np.array([left, top, left, top], np.float32), 0, np.array([width, height, width, height], np.float32))
        sides = corners[:, 2:] - corners[:, :2]
        keep = still_shown(sides, boxes[:, 2:].prod(1), region=(sides[:, 0] >= width / 2) & (sides[:, 1] >= height / 2))
        all_boxes.append(np.column_stack([corners[keep, :2] + np.array([x0, y0], np.float32), sides[keep]]))
        all_labels.append(labels[keep])
        shares.append(width * height / size**2)
    return image, np.concatenate(all_boxes).astype(np.float32), np.concatenate(all_labels), np.array(shares, np.float32)
