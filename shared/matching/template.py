"""Template matching (cv2.matchTemplate): every occurrence above a threshold, with NMS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from shared.matching.pictures import load_bgr, to_gray
from shared.matching.tool import MatchTool, ToolInput, ToolOutput, ToolParams
from shared.platform.errors import BadRequest
from shared.vision.boxes import greedy_nms

MethodName = Literal["TM_CCOEFF_NORMED", "TM_CCORR_NORMED", "TM_SQDIFF_NORMED", "TM_CCOEFF", "TM_CCORR", "TM_SQDIFF"]
METHODS: dict[str, int] = {
    "TM_CCOEFF_NORMED": cv2.TM_CCOEFF_NORMED,
    "TM_CCORR_NORMED": cv2.TM_CCORR_NORMED,
    "TM_SQDIFF_NORMED": cv2.TM_SQDIFF_NORMED,
    "TM_CCOEFF": cv2.TM_CCOEFF,
    "TM_CCORR": cv2.TM_CCORR,
    "TM_SQDIFF": cv2.TM_SQDIFF,
}
#: Two matches whose boxes overlap more than this (intersection over union) are one match.
NMS_IOU = 0.3


class TemplateParams(ToolParams):
    method: MethodName = "TM_CCOEFF_NORMED"
    threshold: float = Field(0.8, ge=0.1, le=1.0)
    max_results: int = Field(20, ge=1, le=1000)
    use_grayscale: bool = True


@dataclass(frozen=True)
class TemplateMatch:
    x: int
    y: int
    w: int
    h: int
    score: float


@dataclass(frozen=True)
class TemplateResult:
    method: str
    matches_found: int  # local score peaks at or above the threshold, before NMS
    matches: list[TemplateMatch]  # after NMS, best first, at most max_results
    best_score: float
    similarity: np.ndarray  # per top-left position; 1 is best


def similarity_map(image: np.ndarray, template: np.ndarray, method: str) -> np.ndarray:
    """cv2.matchTemplate's result turned into a similarity where higher is always better.

    Normalised methods keep their absolute scale (SQDIFF_NORMED becomes 1 - value). The three
    unnormalised methods have no absolute scale, so their map is min-max scaled to [0, 1]:
    the best location scores 1 and the threshold is relative to the range seen in this image.
    """
    raw = cv2.matchTemplate(image, template, METHODS[method]).astype(np.float32)
    raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)  # flat windows give NaN
    lower_is_better = method in ("TM_SQDIFF", "TM_SQDIFF_NORMED")
    if method.endswith("_NORMED"):
        return 1.0 - raw if lower_is_better else raw
    low, high = float(raw.min()), float(raw.max())
    scaled = (raw - low) / (high - low) if high > low else np.ones_like(raw)
    return 1.0 - scaled if lower_is_better else scaled


def find_matches(similarity: np.ndarray, width: int, height: int, threshold: float, max_results: int) -> tuple[int, list[TemplateMatch]]:
    """Local peaks at or above ``threshold``, then greedy NMS on their boxes (best first)."""
    window = (max(1, height // 2) | 1, max(1, width // 2) | 1)
    peaks = (similarity >= cv2.dilate(similarity, np.ones(window, np.uint8))) & (similarity >= threshold)
    ys, xs = np.nonzero(peaks)
    scores = similarity[ys, xs]
    boxes = np.column_stack([xs, ys, np.full_like(xs, width), np.full_like(ys, height)])
    kept = greedy_nms(boxes, scores, NMS_IOU, max_kept=max_results)
    matches = [TemplateMatch(int(xs[i]), int(ys[i]), width, height, round(float(scores[i]), 4)) for i in kept]
    return len(xs), matches


def ensure_template_fits(image: np.ndarray, template: np.ndarray) -> None:
    if template.shape[0] > image.shape[0] or template.shape[1] > image.shape[1]:
        raise BadRequest(
            f"The template ({template.shape[1]}x{template.shape[0]}) is larger than the image "
            f"({image.shape[1]}x{image.shape[0]}); it must fit inside it"
        )


def match_template(image: np.ndarray, template: np.ndarray, params: TemplateParams) -> TemplateResult:
    if params.use_grayscale:
        image, template = to_gray(image), to_gray(template)
    ensure_template_fits(image, template)
    height, width = template.shape[:2]
    similarity = similarity_map(image, template, params.method)
    found, matches = find_matches(similarity, width, height, params.threshold, params.max_results)
    return TemplateResult(
        method=params.method,
        matches_found=found,
        matches=matches,
        best_score=round(float(similarity.max()), 4),
        similarity=similarity,
    )


def draw_matches(image: np.ndarray, matches: list[TemplateMatch]) -> np.ndarray:
    canvas = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for match in matches:
        cv2.rectangle(canvas, (match.x, match.y), (match.x + match.w, match.y + match.h), (0, 0, 255), thickness)
        cv2.putText(
            canvas,
            f"{match.score:.2f}",
            (match.x, max(12, match.y - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            (0, 0, 255),
            thickness,
            cv2.LINE_AA,
        )
    return canvas


def draw_heatmap(similarity: np.ndarray, image_shape: tuple[int, ...], template_size: tuple[int, int]) -> np.ndarray:
    """The similarity as a colour map the size of the image, each value at its window's centre."""
    width, height = template_size
    scaled = cv2.normalize(similarity, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    canvas = np.zeros(image_shape[:2], np.uint8)
    top, left = height // 2, width // 2
    canvas[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    return cv2.applyColorMap(canvas, cv2.COLORMAP_JET)


class TemplateTool(MatchTool):
    name = "template"
    params_model = TemplateParams
    inputs = (ToolInput("image", "image"), ToolInput("template", "image"))
    found_when = "filtered_matches"

    def check(self, checked: list[np.ndarray], params: TemplateParams) -> None:
        ensure_template_fits(*checked)

    def run(self, inputs: list[bytes], params: TemplateParams) -> ToolOutput:
        image, template = (load_bgr(data, self.settings.max_image_pixels) for data in inputs)
        result = match_template(image, template, params)
        size = (template.shape[1], template.shape[0])
        return ToolOutput(
            result_data={
                "method": result.method,
                "matches_found": result.matches_found,
                "filtered_matches": len(result.matches),
                "best_score": result.best_score,
                "matches": [vars(match) for match in result.matches],
            },
            pictures={
                "matches.png": draw_matches(image, result.matches),
                "heatmap.png": draw_heatmap(result.similarity, image.shape, size),
            },
        )
