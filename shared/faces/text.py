"""Text regions: PaddleOCR's PP-OCRv4 text detector (DB) and recogniser (CTC), the models that
``rapidocr-onnxruntime`` 1.4.4 ships in its wheel (model card: ``shared/faces/model/TEXT_MODEL_CARD.md``).

Only detection is needed to hide ``text``. For ``numbers`` each detected region is read, and is a
number when what it reads holds a run of at least 4 digits (spaces, dots and dashes allowed
between them): ID and card numbers, plates, phone numbers. What a region says is never returned,
stored or logged: it lives inside ``TextRecognizer.holds_numbers`` and is dropped there.

Pure: numpy in, typed results out. Each model is loaded once per process (``FacePrivacy``).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from shared.faces.anonymize import AnonymizeStyle, _replacement
from shared.faces.detections import FaceDetections
from shared.faces.detectors import OpenVinoSession
from shared.faces.hide import HideTarget

TextKind = Literal["text", "number"]

#: Most text regions one image (or video frame) keeps, the largest first: the work of a hostile
#: image with thousands of specks is bounded; smaller regions past it are not hidden.
MAX_TEXT_REGIONS = 1000
#: Most regions read per image for ``numbers``, the largest first; the others are hidden unread
#: (taken as numbers: better to hide too much than too little).
MAX_RECOGNIZED = 200
#: Widest crop the recogniser reads (48 px high): a longer line is squeezed to it.
MAX_RECOGNIZED_WIDTH = 1280
RECOGNIZER_HEIGHT = 48
RECOGNIZER_BATCH = 8

DIGITS = "0-9\uff10-\uff19"  # ASCII and full-width digits (the recogniser's dictionary has both)
SEPARATORS = r" .\-\u00b7\u2010\u2011\u2013\u2014\uff0d\uff0e"  # spaces, dots, dashes
#: At least 4 digits, any spaces, dots and dashes between them.
DIGIT_RUN = re.compile(f"[{DIGITS}](?:[{SEPARATORS}]*[{DIGITS}]){{3,}}")


def holds_digit_run(text: str) -> bool:
    """Whether ``text`` holds a run of at least 4 digits, spaces, dots and dashes allowed between them."""
    return DIGIT_RUN.search(text) is not None


def ordered_quad(points: np.ndarray) -> np.ndarray:
    """Four points as top-left, top-right, bottom-right, bottom-left (the two leftmost are the left side)."""
    points = np.asarray(points, np.float32).reshape(4, 2)
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    top_left, bottom_left = left[np.argsort(left[:, 1], kind="stable")]
    top_right, bottom_right = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([top_left, top_right, bottom_right, bottom_left], np.float32)


def quads_to_boxes(quads: np.ndarray) -> np.ndarray:
    """(N, 4, 2) quadrilaterals to (N, 4) ``x, y, w, h``: the axis-aligned box around each."""
    quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
    low, high = quads.min(axis=1), quads.max(axis=1)
    return np.hstack([low, high - low]).astype(np.float32)


def quad_sides(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean length of each quad's top/bottom sides and of its left/right sides."""
    quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
    along = (np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1) + np.linalg.norm(quads[:, 2] - quads[:, 3], axis=1)) / 2
    across = (np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1) + np.linalg.norm(quads[:, 2] - quads[:, 1], axis=1)) / 2
    return along, across


def grown_quads(quads: np.ndarray, margin: float) -> np.ndarray:
    """Each quad (tl, tr, br, bl) with every side pushed out by ``margin`` x its shorter side
    (the text's height, for a line): the margin follows the letters, not the line's length."""
    quads = np.asarray(quads, np.float32).reshape(-1, 4, 2).copy()
    if not len(quads) or margin == 0:
        return quads
    along_vector = ((quads[:, 1] - quads[:, 0]) + (quads[:, 2] - quads[:, 3])) / 2
    across_vector = ((quads[:, 3] - quads[:, 0]) + (quads[:, 2] - quads[:, 1])) / 2
    along_length = np.linalg.norm(along_vector, axis=1, keepdims=True)
    across_length = np.linalg.norm(across_vector, axis=1, keepdims=True)
    push = margin * np.minimum(along_length, across_length)
    unit_along = along_vector / np.maximum(along_length, 1e-6)
    unit_across = across_vector / np.maximum(across_length, 1e-6)
    out_along, out_across = unit_along * push, unit_across * push
    quads[:, 0] += -out_along - out_across
    quads[:, 1] += out_along - out_across
    quads[:, 2] += out_along + out_across
    quads[:, 3] += -out_along + out_across
    return quads


def quads_mask(quads: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which pixels the quadrilaterals cover (filled polygons, clipped to the image)."""
    mask = np.zeros((height, width), np.uint8)
    if len(quads):
        cv2.fillPoly(mask, [np.round(quad).astype(np.int32) for quad in np.asarray(quads).reshape(-1, 4, 2)], 1)
    return mask.astype(bool)


def text_strength(text_height: float, mode: str) -> int:
    """Blur radius (or pixel-block size) for text: half its height (letters, unlike a face, stay
    readable under a light blur)."""
    if mode == "solid":
        return 0
    return max(3, round(text_height / 2))


@dataclass(frozen=True)
class TextRegions:
    """``quads``: (N, 4, 2) float32, top-left, top-right, bottom-right, bottom-left, in image
    pixels; ``scores``: (N,) in [0, 1]; ``numbers``: (N,) bool, read as holding a digit run."""

    quads: np.ndarray
    scores: np.ndarray
    numbers: np.ndarray

    def __post_init__(self) -> None:
        if self.quads.ndim != 3 or self.quads.shape[1:] != (4, 2):
            raise ValueError(f"quads must have shape (N, 4, 2), got {self.quads.shape}")
        count = self.quads.shape[0]
        if self.scores.shape != (count,) or self.numbers.shape != (count,):
            raise ValueError(f"scores and numbers must have shape ({count},), got {self.scores.shape} and {self.numbers.shape}")

    @classmethod
    def empty(cls) -> TextRegions:
        return cls(np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32), np.zeros((0,), bool))

    @classmethod
    def from_boxes(cls, detections: FaceDetections, numbers: np.ndarray | None = None) -> TextRegions:
        """Axis-aligned ``x, y, w, h`` boxes (tracked ones, in a video) as quads."""
        x, y, w, h = (detections.boxes[:, i] for i in range(4))
        quads = np.stack(
            [np.column_stack([x, y]), np.column_stack([x + w, y]), np.column_stack([x + w, y + h]), np.column_stack([x, y + h])], 1
        )
        flags = np.zeros(len(detections), bool) if numbers is None else np.asarray(numbers, bool)
        return cls(quads.astype(np.float32).reshape(-1, 4, 2), detections.scores.astype(np.float32), flags)

    def __len__(self) -> int:
        return int(self.quads.shape[0])

    def select(self, keep: np.ndarray) -> TextRegions:
        return TextRegions(self.quads[keep], self.scores[keep], self.numbers[keep])

    @property
    def detections(self) -> FaceDetections:
        """The axis-aligned box of each region (the face detections' type: tracking, JSON boxes)."""
        return FaceDetections(quads_to_boxes(self.quads), self.scores.astype(np.float32))

    @property
    def kinds(self) -> list[TextKind]:
        return ["number" if flag else "text" for flag in self.numbers]


def hide_text(rgb: np.ndarray, regions: TextRegions, style: AnonymizeStyle) -> list[int]:
    """Replace, in place, each region's quadrilateral grown by ``style.margin`` x its text height
    (blur, pixelate or solid, as faces); returns each region's strength. ``style.draw_boxes``
    draws the quadrilaterals."""
    height, width = rgb.shape[:2]
    grown = grown_quads(regions.quads, style.margin)
    _, text_heights = quad_sides(regions.quads)
    strengths = []
    for quad, text_height in zip(grown, text_heights, strict=True):
        radius = text_strength(float(text_height), style.mode)
        strengths.append(radius)
        x1, y1 = np.floor(quad.min(axis=0)).astype(int)
        x2, y2 = np.ceil(quad.max(axis=0)).astype(int) + 1
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
        if x2 <= x1 or y2 <= y1:
            continue
        roi = rgb[y1:y2, x1:x2]
        mask = quads_mask(quad[None] - np.array([x1, y1], np.float32), x2 - x1, y2 - y1)
        replaced = _replacement(roi, style.mode, max(radius, 1))
        roi[mask] = replaced[mask]
    if style.draw_boxes:
        cv2.polylines(rgb, [np.round(quad).astype(np.int32) for quad in regions.quads], True, TEXT_BOX_COLOUR, 2)
    return strengths


TEXT_BOX_COLOUR = (255, 160, 0)  # orange frames (faces get green ones)


def text_input_size(width: int, height: int, max_side: int, min_side: int) -> tuple[int, int]:
    """The detector's input size: the longer side at most ``max_side`` (never enlarged past it),
    a small image enlarged until its shorter side reaches ``min_side``; multiples of 32."""
    scale = min(max_side / max(width, height), max(1.0, min_side / min(width, height)))
    return max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32)


def text_blob(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The detector's input: ``rgb`` resized to ``size`` (bilinear), BGR scaled to -1..1, NCHW."""
    resized = rgb if size == (rgb.shape[1], rgb.shape[0]) else cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    return cv2.dnn.blobFromImage(resized, 1 / 127.5, None, (127.5, 127.5, 127.5), swapRB=True, crop=False)


class TextDetector:
    """PP-OCRv4's text detector (DB: a per-pixel text probability, thresholded), on OpenVINO.

    The image (BGR, scaled to ``text_input_size``) gives a probability map; its connected regions
    above ``pixel_threshold`` (the ``MAX_TEXT_REGIONS`` largest) each give the rotated rectangle
    around them, kept when the mean probability inside is at least ``min_score``, then pushed out
    by ``area x unclip_ratio / perimeter`` on each side (DB's unclip, exact for a rectangle),
    as rapidocr 1.4.4 does with its defaults (0.3, 0.5, 1.6).
    """

    name = "text"
    MIN_SIDE = 3  # network pixels: thinner regions are noise
    MIN_INPUT_SIDE = 640  # a small image is enlarged until its shorter side reaches it

    def __init__(
        self,
        model_path: Path,
        max_input_side: int = 1536,
        min_input_side: int = MIN_INPUT_SIDE,
        pixel_threshold: float = 0.3,
        min_score: float = 0.5,
        unclip_ratio: float = 1.6,
        max_regions: int = MAX_TEXT_REGIONS,
    ) -> None:
        self._session = OpenVinoSession(model_path)
        self.model_name = model_path.stem
        self.max_input_side = max_input_side
        self.min_input_side = min_input_side
        self.pixel_threshold = pixel_threshold
        self.min_score = min_score
        self.unclip_ratio = unclip_ratio
        self.max_regions = max_regions

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """The text probability map of ``rgb`` at the network's input size."""
        height, width = rgb.shape[:2]
        size = text_input_size(width, height, self.max_input_side, self.min_input_side)
        (output,) = self._session.run(None, {"x": text_blob(rgb, size)})
        return output[0, 0]

    def detect(self, rgb: np.ndarray) -> TextRegions:
        height, width = rgb.shape[:2]
        probability = self.probabilities(rgb)
        quads, scores = regions_from_probabilities(
            probability, self.pixel_threshold, self.min_score, self.unclip_ratio, self.max_regions, self.MIN_SIDE
        )
        if not len(quads):
            return TextRegions.empty()
        quads = quads * np.array([width / probability.shape[1], height / probability.shape[0]], np.float32)
        quads[:, :, 0] = np.clip(quads[:, :, 0], 0, width)
        quads[:, :, 1] = np.clip(quads[:, :, 1], 0, height)
        return TextRegions(quads.astype(np.float32), scores, np.zeros(len(quads), bool))


def regions_from_probabilities(
    probability: np.ndarray, pixel_threshold: float, min_score: float, unclip_ratio: float, max_regions: int, min_side: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """DB's post-processing: (N, 4, 2) ordered quads in the map's pixels and their scores."""
    bitmap = cv2.dilate((probability > pixel_threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bitmap, connectivity=8)
    candidates = np.arange(1, count)
    candidates = candidates[np.minimum(stats[candidates, cv2.CC_STAT_WIDTH], stats[candidates, cv2.CC_STAT_HEIGHT]) >= min_side]
    candidates = candidates[np.argsort(-stats[candidates, cv2.CC_STAT_AREA], kind="stable")][:max_regions]
    quads, scores = [], []
    for label in candidates:
        x, y, w, h = (int(v) for v in stats[label, :4])
        ys, xs = np.nonzero(labels[y : y + h, x : x + w] == label)
        points = np.column_stack([xs + x, ys + y]).astype(np.float32)
        centre, (side_a, side_b), angle = cv2.minAreaRect(points)
        if min(side_a, side_b) < min_side:
            continue
        score = mean_inside(probability, cv2.boxPoints((centre, (side_a + 1, side_b + 1), angle)))
        if score < min_score:
            continue
        side_a, side_b = side_a + 1, side_b + 1  # pixel centres to pixel edges
        push = side_a * side_b * unclip_ratio / (2 * (side_a + side_b))
        grown = (centre, (side_a + 2 * push, side_b + 2 * push), angle)
        if min(grown[1]) < min_side + 2:
            continue
        quads.append(ordered_quad(cv2.boxPoints(grown)))
        scores.append(score)
    if not quads:
        return np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32)
    return np.array(quads, np.float32), np.array(scores, np.float32)


def mean_inside(probability: np.ndarray, quad: np.ndarray) -> float:
    """Mean of ``probability`` inside the quadrilateral (DB's fast box score)."""
    height, width = probability.shape
    x1, y1 = np.clip(np.floor(quad.min(axis=0)).astype(int), 0, [width - 1, height - 1])
    x2, y2 = np.clip(np.ceil(quad.max(axis=0)).astype(int), 0, [width - 1, height - 1])
    mask = np.zeros((y2 - y1 + 1, x2 - x1 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(quad - [x1, y1]).astype(np.int32)], 1)
    return float(cv2.mean(probability[y1 : y2 + 1, x1 : x2 + 1], mask)[0])


class TextRecognizer:
    """PP-OCRv4's recogniser (CTC over its 6623-character dictionary, kept in the model's
    metadata), on OpenVINO, used only to tell which regions hold a digit run (``holds_numbers``)."""

    def __init__(self, model_path: Path) -> None:
        self._session = OpenVinoSession(model_path)
        self.model_name = model_path.stem
        characters = self._session.metadata("character").splitlines()
        self.characters = ["", *characters, " "]  # CTC's blank first, a space last (as PaddleOCR decodes)

    def holds_numbers(self, rgb: np.ndarray, quads: np.ndarray) -> np.ndarray:
        """(N,) bool: whether what each region reads holds a digit run. The text is dropped here."""
        crops = [upright_crop(rgb, quad) for quad in quads]
        found = np.zeros(len(crops), bool)
        order = np.argsort([crop.shape[1] / max(crop.shape[0], 1) for crop in crops], kind="stable")
        for start in range(0, len(order), RECOGNIZER_BATCH):
            batch = order[start : start + RECOGNIZER_BATCH]
            classes = self._session.run(None, {"x": recognizer_batch([crops[i] for i in batch])})[0].argmax(axis=2)
            for index, row in zip(batch, classes, strict=True):
                found[index] = holds_digit_run(self._decoded(row))
        return found

    def _decoded(self, classes: np.ndarray) -> str:
        """CTC: repeats collapsed, blanks dropped."""
        keep = np.ones(len(classes), bool)
        keep[1:] = classes[1:] != classes[:-1]
        return "".join(self.characters[c] for c in classes[keep] if c)


def upright_crop(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quadrilateral warped to an upright rectangle; a tall one (height >= 1.5 x width) turned
    to lie (vertical text)."""
    width = max(1, round(max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3]))))
    height = max(1, round(max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1]))))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    transform = cv2.getPerspectiveTransform(np.asarray(quad, np.float32), target)
    crop = cv2.warpPerspective(rgb, transform, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return np.rot90(crop) if height >= 1.5 * width else crop


def recognizer_batch(crops: list[np.ndarray]) -> np.ndarray:
    """The recogniser's input: each crop 48 px high (width by its ratio, at most
    ``MAX_RECOGNIZED_WIDTH``), BGR scaled to -1..1, right-padded with zeros to the widest."""
    widths = [min(MAX_RECOGNIZED_WIDTH, max(1, math.ceil(RECOGNIZER_HEIGHT * c.shape[1] / max(c.shape[0], 1)))) for c in crops]
    batch_width = max(320, max(widths))
    batch = np.zeros((len(crops), 3, RECOGNIZER_HEIGHT, batch_width), np.float32)
    for index, (crop, width) in enumerate(zip(crops, widths, strict=True)):
        resized = cv2.resize(np.ascontiguousarray(crop), (width, RECOGNIZER_HEIGHT), interpolation=cv2.INTER_LINEAR)
        batch[index, :, :, :width] = resized[:, :, ::-1].transpose(2, 0, 1) / 127.5 - 1.0
    return batch


class TextStage:
    """The text stage of the pipeline: detect, and for ``numbers`` read, the regions to hide.
    ``stage_ms`` holds the last call's time per step."""

    def __init__(self, detector: TextDetector, recognizer: TextRecognizer, max_recognized: int = MAX_RECOGNIZED) -> None:
        self.detector = detector
        self.recognizer = recognizer
        self.max_recognized = max_recognized
        self.model_name = f"{detector.model_name}+{recognizer.model_name}"
        self.stage_ms: dict[str, float] = {}

    def find(self, rgb: np.ndarray, hide: frozenset[HideTarget]) -> TextRegions:
        """The regions ``hide`` asks to cover: every text region with ``text``; with ``numbers``
        the ones reading as numbers (and, past ``max_recognized``, the unread ones), each
        region's kind known whenever ``numbers`` is asked."""
        if not hide & {"text", "numbers"}:
            return TextRegions.empty()
        started = time.perf_counter()
        regions = self.detector.detect(rgb)
        detected_at = time.perf_counter()
        if "numbers" in hide and len(regions):
            areas = np.prod(quad_sides(regions.quads), axis=0)
            read = np.argsort(-areas, kind="stable")[: self.max_recognized]
            numbers = np.ones(len(regions), bool)  # unread: hidden, to be safe
            numbers[read] = self.recognizer.holds_numbers(rgb, regions.quads[read])
            regions = TextRegions(regions.quads, regions.scores, numbers)
            if "text" not in hide:
                regions = regions.select(numbers)
        self.stage_ms = {
            "text_detection": round((detected_at - started) * 1000, 1),
            "text_recognition": round((time.perf_counter() - detected_at) * 1000, 1),
        }
        return regions
