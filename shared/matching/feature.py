"""Keypoint feature matching: detect, describe, match (Lowe ratio), then locate by homography."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from shared.matching.pictures import load_bgr, to_gray
from shared.matching.tool import MatchTool, ToolInput, ToolOutput, ToolParams
from shared.platform.errors import BadRequest

DetectorName = Literal["SIFT", "ORB", "AKAZE", "BRISK"]
MatcherName = Literal["FLANN", "BFMatcher"]
#: Binary descriptors (compared by Hamming distance); SIFT's are float (L2).
BINARY_DETECTORS = frozenset({"ORB", "AKAZE", "BRISK"})
ORB_FEATURES = 5000
RANSAC_REPROJECTION_PX = 5.0
#: Fewer RANSAC inliers than this and the query is not considered located.
MIN_INLIERS_TO_LOCATE = 10
FLANN_KDTREE, FLANN_LSH = 1, 6
#: Smaller images make OpenCV's detectors fail (ORB/BRISK pyramids, AKAZE allocation).
MIN_IMAGE_SIDE = 16


class FeatureParams(ToolParams):
    detector: DetectorName = "SIFT"
    matcher: MatcherName = "FLANN"
    ratio_threshold: float = Field(0.75, ge=0.1, le=1.0)
    max_matches: int = Field(200, ge=1, le=5000)


@dataclass(frozen=True)
class Located:
    homography: np.ndarray  # 3x3, query -> train pixels
    inliers: np.ndarray  # bool per good match
    outline: np.ndarray | None  # 4x2 corners of the query in the train image; None: not a plausible quad


@dataclass(frozen=True)
class FeatureResult:
    query_keypoints: list[cv2.KeyPoint]
    train_keypoints: list[cv2.KeyPoint]
    good: list[cv2.DMatch]  # ratio-test survivors, best (smallest distance) first
    located: Located | None


def create_detector(name: str) -> cv2.Feature2D:
    """OpenCV 5 keeps SIFT and ORB at the top level, AKAZE and BRISK in xfeatures2d."""
    if name == "SIFT":
        return cv2.SIFT_create()
    if name == "ORB":
        return cv2.ORB_create(nfeatures=ORB_FEATURES)
    if name == "AKAZE":
        return cv2.xfeatures2d.AKAZE_create()
    return cv2.xfeatures2d.BRISK_create()


def create_matcher(matcher: str, detector: str) -> cv2.DescriptorMatcher:
    """FLANN with an index that fits the descriptor (KD-tree: float, LSH: binary) or brute force."""
    binary = detector in BINARY_DETECTORS
    if matcher == "BFMatcher":
        return cv2.BFMatcher(cv2.NORM_HAMMING if binary else cv2.NORM_L2)
    index = (
        {"algorithm": FLANN_LSH, "table_number": 6, "key_size": 12, "multi_probe_level": 1}
        if binary
        else {"algorithm": FLANN_KDTREE, "trees": 5}
    )
    return cv2.FlannBasedMatcher(index, {"checks": 50})


def ratio_test(pairs: list[tuple[cv2.DMatch, ...]], ratio: float) -> list[cv2.DMatch]:
    """Lowe's test: keep a match when it is clearly better than the second best candidate."""
    good = [pair[0] for pair in pairs if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance]
    return sorted(good, key=lambda match: match.distance)


def locate(query_points: np.ndarray, train_points: np.ndarray, query_size: tuple[int, int]) -> Located | None:
    """RANSAC homography from matched points, and the query's outline if it is a plausible quad."""
    if len(query_points) < 4:
        return None
    homography, mask = cv2.findHomography(query_points, train_points, cv2.RANSAC, RANSAC_REPROJECTION_PX)
    if homography is None or not np.isfinite(homography).all():
        return None
    inliers = mask.ravel().astype(bool)
    width, height = query_size
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32).reshape(-1, 1, 2)
    outline = cv2.perspectiveTransform(corners, homography).reshape(4, 2)
    plausible = (
        int(inliers.sum()) >= MIN_INLIERS_TO_LOCATE
        and np.isfinite(outline).all()
        and cv2.isContourConvex(outline.astype(np.float32))
        and cv2.contourArea(outline.astype(np.float32)) > 1.0
    )
    return Located(homography, inliers, outline if plausible else None)


def ensure_big_enough(query: np.ndarray, train: np.ndarray) -> None:
    for role, image in (("query_image", query), ("train_image", train)):
        if min(image.shape[:2]) < MIN_IMAGE_SIDE:
            raise BadRequest(
                f"{role} is {image.shape[1]}x{image.shape[0]}; feature matching needs at least {MIN_IMAGE_SIDE} px on each side"
            )


def match_features(query: np.ndarray, train: np.ndarray, params: FeatureParams) -> FeatureResult:
    ensure_big_enough(query, train)
    try:
        return _match_features(query, train, params)
    except cv2.error as error:
        raise BadRequest(f"{params.detector} feature matching failed on these images: {error.err}") from error


def _match_features(query: np.ndarray, train: np.ndarray, params: FeatureParams) -> FeatureResult:
    detector = create_detector(params.detector)
    query_keypoints, query_descriptors = detector.detectAndCompute(to_gray(query), None)
    train_keypoints, train_descriptors = detector.detectAndCompute(to_gray(train), None)
    good: list[cv2.DMatch] = []
    if query_descriptors is not None and train_descriptors is not None and len(train_descriptors) >= 2:
        matcher = create_matcher(params.matcher, params.detector)
        good = ratio_test(matcher.knnMatch(query_descriptors, train_descriptors, k=2), params.ratio_threshold)
    query_points = np.array([query_keypoints[match.queryIdx].pt for match in good], dtype=np.float32).reshape(-1, 1, 2)
    train_points = np.array([train_keypoints[match.trainIdx].pt for match in good], dtype=np.float32).reshape(-1, 1, 2)
    located = locate(query_points, train_points, (query.shape[1], query.shape[0]))
    return FeatureResult(list(query_keypoints), list(train_keypoints), good, located)


def draw_feature_matches(query: np.ndarray, train: np.ndarray, result: FeatureResult, limit: int) -> np.ndarray:
    """The best ``limit`` matches (inliers green, others red) and the located outline (blue)."""
    shown = result.good[:limit]
    inliers = result.located.inliers[:limit] if result.located else np.zeros(len(shown), bool)
    canvas = cv2.drawMatches(
        query,
        result.query_keypoints,
        train,
        result.train_keypoints,
        [],
        None,
        flags=cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS,
    )
    offset = np.array([query.shape[1], 0], dtype=np.float32)
    for match, inlier in zip(shown, inliers, strict=True):
        start = np.array(result.query_keypoints[match.queryIdx].pt, dtype=np.float32)
        end = np.array(result.train_keypoints[match.trainIdx].pt, dtype=np.float32) + offset
        colour = (0, 200, 0) if inlier else (0, 0, 255)
        cv2.line(canvas, tuple(int(v) for v in start), tuple(int(v) for v in end), colour, 1, cv2.LINE_AA)
    if result.located is not None and result.located.outline is not None:
        outline = np.int32(result.located.outline + offset).reshape(-1, 1, 2)
        cv2.polylines(canvas, [outline], True, (255, 0, 0), 3, cv2.LINE_AA)
    return canvas


class FeatureTool(MatchTool):
    name = "feature"
    params_model = FeatureParams
    inputs = (ToolInput("query_image", "image"), ToolInput("train_image", "image"))
    found_when = "good_matches"

    def check(self, checked: list[np.ndarray], params: FeatureParams) -> None:
        ensure_big_enough(*checked)

    def run(self, inputs: list[bytes], params: FeatureParams) -> ToolOutput:
        query, train = (load_bgr(data, self.settings.max_image_pixels) for data in inputs)
        result = match_features(query, train, params)
        located = result.located
        return ToolOutput(
            result_data={
                "query_keypoints": len(result.query_keypoints),
                "train_keypoints": len(result.train_keypoints),
                "good_matches": len(result.good),
                "detector": params.detector,
                "matcher": params.matcher,
                "matches": [
                    {
                        "query": [round(v, 2) for v in result.query_keypoints[m.queryIdx].pt],
                        "train": [round(v, 2) for v in result.train_keypoints[m.trainIdx].pt],
                        "distance": round(float(m.distance), 3),
                    }
                    for m in result.good[: params.max_matches]
                ],
                "homography": np.round(located.homography, 8).tolist() if located else None,
                "inliers": int(located.inliers.sum()) if located else 0,
                "located": bool(located and located.outline is not None),
                "outline": np.round(located.outline.astype(float), 2).tolist() if located and located.outline is not None else None,
            },
            pictures={"matches.png": draw_feature_matches(query, train, result, params.max_matches)},
        )
