"""Defect inspection core: one grey or RGB image in, its class and located defects out (onnxruntime).

The model file is loaded once per process (``DefectModel.load``); ``inspect`` is pure (numpy in,
an ``Inspection`` out) and does no I/O.

Model contract (the shipped ``model/neu_det.onnx`` and any model an operator points
``VISIONFN_DEFECT_MODEL_PATH`` at):

- one input, float32, shape ``[1, 1, H, W]``: the grey image with values 0..255 as they are
  (the model normalises inside). ``H`` and ``W`` may be fixed (the shipped model: 200 x 200)
  or dynamic (then 200 x 200 is used).
- three outputs, found by name:
  ``class_probs`` ``[1, C]``: the image's class probabilities (summing to 1);
  ``heatmap`` ``[1, C, h, w]``: per class, the probability (0..1) that a defect's centre lies in
  each cell of an ``h x w`` grid over the input (the shipped model: stride 8, 25 x 25);
  ``boxes`` ``[1, 4, h, w]``: the box ``cx, cy, w, h`` (input pixels) of a defect centred in
  each cell.
  ``C`` is ``len(LABELS)`` and the channel order is ``LABELS``.

Test-time flip (``flip=True``, the default): the model also sees the image mirrored left to
right, and its heatmap, boxes and class probabilities are mirrored back and averaged with the
first pass's (only where the grid is aligned with the input: ``W`` a multiple of ``w``). Two
passes instead of one (about 2x the time; the model card gives it).

Decoding: a cell is a defect when its heatmap value is a 3 x 3 local maximum and at least
``min_score``; boxes of one class overlapping by IoU > ``NMS_IOU`` keep the best (greedy NMS).
Box voting (``vote_iou``): each kept box becomes the score-weighted mean (corners) of the boxes
of its class's cells scoring at least ``VOTE_MIN_SCORE`` that overlap it by IoU >= ``vote_iou``.

Input size policy: every image is converted to grey (RGB: ITU-R 601 luma) and resized to the
model's input (area interpolation when shrinking, bilinear when enlarging), ignoring its aspect
ratio, so a 1920 x 1080 picture costs little more than a 200 x 200 one (17 vs 13 ms with the
flip on a loaded machine, the resize); boxes are scaled back to the input image's pixels. The
model was trained on 200 x 200 crops of steel strip (about 1 px per 0.1 mm): a large picture
of a whole plate is seen at a coarser scale than it was trained on, so small defects in it may
be missed; crop to the region of interest for those.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from shared.vision.boxes import corners_to_xywh, greedy_nms, pairwise_iou

LABELS: tuple[str, ...] = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
SHIPPED_MODEL = Path(__file__).resolve().parent / "model" / "neu_det.onnx"
DEFAULT_INPUT_SIZE = (200, 200)  # H, W used when the model's input size is dynamic
DEFAULT_MIN_SCORE = 0.25  # defects below this heatmap score are not reported (chosen on the val split)
MAX_DEFECTS = 50
NMS_IOU = 0.5  # boxes of one class overlapping more than this keep the best (chosen on the val split)
VOTE_IOU: float | None = 0.5  # box voting: a kept box is the mean of its class's boxes overlapping it this much
VOTE_MIN_SCORE = 0.05  # cells below this heatmap score do not vote
FLIP = True  # average the model's outputs over the image and its left-right mirror (chosen on the val split)
OUTPUTS = ("class_probs", "heatmap", "boxes")


@dataclass(frozen=True)
class Defect:
    """One located defect."""

    label: str
    score: float  # 0..1
    box: tuple[int, int, int, int]  # x, y, w, h in the input image's pixels


@dataclass(frozen=True)
class Inspection:
    """An image's class with its confidence, and its located defects (best first)."""

    label: str  # the image's class, one of LABELS
    score: float  # confidence of that class, 0..1 (the API calls it `dice`)
    defects: tuple[Defect, ...]


class DefectModel:
    """An ONNX defect model and its decoding; create once per process with ``load``."""

    def __init__(self, session: Any, input_name: str, input_size: tuple[int, int]) -> None:  # an onnxruntime session
        self._session = session
        self._input_name = input_name
        self.input_size = input_size  # H, W

    @classmethod
    def load(cls, path: Path | None = None) -> DefectModel:
        """The model at ``path``; ``None``: ``VISIONFN_DEFECT_MODEL_PATH`` when set, else the shipped file."""
        import onnxruntime as ort

        from shared.defects.settings import get_defect_settings

        path = Path(path or get_defect_settings().defect_model_path or SHIPPED_MODEL)
        if not path.is_file():
            raise FileNotFoundError(f"defect model {path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # serverless: one core per invocation; measured, see the model card
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable files
            raise ValueError(f"defect model {path} is not a readable ONNX model: {exc}") from exc
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(f"defect model {path}: expected one input of shape [1, 1, H, W], got {[i.shape for i in inputs]}")
        missing = set(OUTPUTS) - {output.name for output in session.get_outputs()}
        if missing:
            raise ValueError(f"defect model {path}: outputs {sorted(missing)} are missing (expected {list(OUTPUTS)})")
        height, width = inputs[0].shape[2:]
        size = (height, width) if isinstance(height, int) and isinstance(width, int) else DEFAULT_INPUT_SIZE
        return cls(session, inputs[0].name, size)

    def inspect(
        self,
        image: np.ndarray,
        *,
        min_score: float = DEFAULT_MIN_SCORE,
        flip: bool = FLIP,
        nms_iou: float = NMS_IOU,
        vote_iou: float | None = VOTE_IOU,
    ) -> Inspection:
        """The class and defects of ``image`` (HxW uint8 grey, HxWx3 uint8 RGB or HxWx1, any size);
        ``flip``, ``nms_iou`` and ``vote_iou``: the decoding (module docstring), for evaluation."""
        grey = to_grey(image)
        height, width = self.input_size
        resized = cv2.resize(
            grey,
            (width, height),
            interpolation=cv2.INTER_AREA if grey.shape[0] * grey.shape[1] > height * width else cv2.INTER_LINEAR,
        )
        tensor = resized.astype(np.float32)[None, None]
        class_probs, heatmap, boxes = self._run(tensor)
        if flip and width % heatmap.shape[2] == 0:
            mirrored = unmirror(*self._run(np.ascontiguousarray(tensor[..., ::-1])), input_width=width)
            class_probs, heatmap, boxes = ((a + b) / 2 for a, b in zip((class_probs, heatmap, boxes), mirrored, strict=True))
        return decode(
            class_probs,
            heatmap,
            boxes,
            scale=(grey.shape[1] / width, grey.shape[0] / height),
            image_size=(grey.shape[1], grey.shape[0]),
            min_score=min_score,
            nms_iou=nms_iou,
            vote_iou=vote_iou,
        )

    def _run(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model's class probabilities ``[C]``, heatmap ``[C, h, w]`` and boxes ``[4, h, w]`` of one input."""
        class_probs, heatmap, boxes = self._session.run(list(OUTPUTS), {self._input_name: tensor})
        return np.asarray(class_probs)[0], np.asarray(heatmap)[0], np.asarray(boxes)[0]


def unmirror(class_probs: np.ndarray, heatmap: np.ndarray, boxes: np.ndarray, *, input_width: int) -> tuple[np.ndarray, ...]:
    """The outputs of a left-right mirrored input mapped back onto the original (``input_width``: the
    model input's width, a multiple of the grid's): cells mirrored, box centres ``x -> W - x``."""
    heatmap = heatmap[:, :, ::-1]
    boxes = boxes[:, :, ::-1].copy()
    boxes[0] = input_width - boxes[0]
    return class_probs, heatmap, boxes


def to_grey(image: np.ndarray) -> np.ndarray:
    """A uint8 HxW grey copy of a grey, grey-with-one-channel or RGB uint8 image; ValueError otherwise."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"image must be HxW grey or HxWx3 RGB, got shape {image.shape}")


def decode(
    class_probs: np.ndarray,
    heatmap: np.ndarray,
    boxes: np.ndarray,
    *,
    scale: tuple[float, float],
    image_size: tuple[int, int],
    min_score: float,
    nms_iou: float = NMS_IOU,
    vote_iou: float | None = VOTE_IOU,
) -> Inspection:
    """The model's outputs for one image (``[C]``, ``[C, h, w]``, ``[4, h, w]``) as an Inspection in
    image pixels (``scale``: image pixels per input pixel in x and y; ``image_size``: width, height;
    ``nms_iou``, ``vote_iou``: the module docstring's decoding)."""
    if class_probs.shape != (len(LABELS),) or heatmap.shape[0] != len(LABELS) or boxes.shape != (4, *heatmap.shape[1:]):
        raise ValueError(
            f"model outputs have shapes {class_probs.shape}, {heatmap.shape}, {boxes.shape}; "
            f"expected ({len(LABELS)},), ({len(LABELS)}, h, w), (4, h, w)"
        )
    best = int(np.argmax(class_probs))
    heatmap = heatmap.astype(np.float32)
    peaks = np.stack([cv2.dilate(channel, np.ones((3, 3), np.uint8)) for channel in heatmap])
    corners = _corners(boxes, scale, image_size)  # (h, w, 4) x1, y1, x2, y2 in image pixels
    found: list[tuple[float, int, np.ndarray]] = []  # score, class, corners
    for label in range(len(LABELS)):
        rows, cols = np.nonzero((heatmap[label] >= peaks[label]) & (heatmap[label] >= min_score))
        scores = heatmap[label, rows, cols]
        candidates = corners[rows, cols]
        kept = greedy_nms(corners_to_xywh(candidates), scores, nms_iou)
        if vote_iou is not None and len(kept):
            candidates[kept] = _vote(candidates[kept], heatmap[label], corners, vote_iou)
        found.extend((float(scores[k]), label, candidates[k]) for k in kept)
    found.sort(key=lambda item: -item[0])
    defects = []
    for score, label, (x1, y1, x2, y2) in found:
        x, y, right, bottom = round(float(x1)), round(float(y1)), round(float(x2)), round(float(y2))
        if right - x >= 1 and bottom - y >= 1:
            defects.append(Defect(LABELS[label], score, (x, y, right - x, bottom - y)))
        if len(defects) == MAX_DEFECTS:
            break
    return Inspection(LABELS[best], float(np.clip(class_probs[best], 0.0, 1.0)), tuple(defects))


def _corners(boxes: np.ndarray, scale: tuple[float, float], image_size: tuple[int, int]) -> np.ndarray:
    """Every cell's box as ``x1, y1, x2, y2`` in image pixels, clipped to the image: (h, w, 4) float32."""
    cx, cy, w, h = boxes.astype(np.float32)
    width, height = image_size
    return np.stack(
        [
            np.clip((cx - w / 2) * scale[0], 0, width),
            np.clip((cy - h / 2) * scale[1], 0, height),
            np.clip((cx + w / 2) * scale[0], 0, width),
            np.clip((cy + h / 2) * scale[1], 0, height),
        ],
        axis=-1,
    )


def _vote(kept: np.ndarray, heat: np.ndarray, corners: np.ndarray, vote_iou: float) -> np.ndarray:
    """Each kept box (corners) replaced by the heat-weighted mean of the cells' boxes (the class's
    cells scoring at least ``VOTE_MIN_SCORE``) overlapping it by IoU >= ``vote_iou``; a box
    without voters stays."""
    voters = heat >= VOTE_MIN_SCORE
    weights = heat[voters]
    boxes = corners[voters]
    if not len(weights):
        return kept
    agree = (pairwise_iou(corners_to_xywh(kept), corners_to_xywh(boxes)) >= vote_iou) * weights[None, :]
    total = agree.sum(1, keepdims=True)
    return np.where(total > 0, agree @ boxes / np.maximum(total, 1e-12), kept).astype(np.float32)
