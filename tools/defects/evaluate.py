"""Evaluate a defect model on a NEU-DET split through ``DefectModel`` (onnxruntime; no torch).

    .venv/bin/python -m tools.defects.evaluate [--model PATH] [--split test|val|train|all] [--sweep]
        [--no-flip] [--nms-iou X] [--vote-iou X | --no-vote]

Prints class accuracy, per-class recall, the confusion matrix, box recall and precision at
IoU >= 0.3 and >= 0.5 (at the model's reporting threshold, ``--min-score``; both with the
label required to match and class-agnostic), VOC mAP@0.5 (all-point interpolation, detections
down to score 0.01) and the median inference time per image (one thread) at 200 x 200 and at
1920 x 1080. ``--sweep`` prints recall/precision at several thresholds (pick them on ``val``).
``--no-flip``, ``--nms-iou`` and ``--vote-iou``/``--no-vote`` change the decoding from the
runtime's defaults (``shared/defects/model.py``), to compare them on ``val``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from shared.defects.metrics import ImageBoxes, MatchCounts, average_precision, confusion_matrix, count_matches
from shared.defects.model import DEFAULT_MIN_SCORE, FLIP, LABELS, NMS_IOU, VOTE_IOU, DefectModel, Inspection
from tools.defects.dataset import DATA_DIR, SPLITS, Sample, load_samples

AP_MIN_SCORE = 0.01
SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)


def per_class(inspections: list[Inspection], min_score: float, label: int | None) -> list[ImageBoxes]:
    """Each image's detections of class ``label`` (None: all) scoring at least ``min_score``."""
    out = []
    for inspection in inspections:
        chosen = [d for d in inspection.defects if d.score >= min_score and (label is None or d.label == LABELS[label])]
        out.append(ImageBoxes(np.array([d.box for d in chosen], np.float64).reshape(-1, 4), np.array([d.score for d in chosen])))
    return out


def truths_of(samples: list[Sample], label: int | None) -> list[ImageBoxes]:
    out = []
    for sample in samples:
        keep = np.ones(len(sample.boxes), bool) if label is None else sample.box_labels == label
        out.append(ImageBoxes(sample.boxes[keep], np.ones(int(keep.sum()))))
    return out


def box_scores(samples: list[Sample], inspections: list[Inspection], min_score: float, iou: float) -> tuple[MatchCounts, MatchCounts]:
    """Matches at ``iou`` with the label required to match (summed over classes), and class-agnostic."""
    by_class = MatchCounts()
    for k in range(len(LABELS)):
        by_class += count_matches(per_class(inspections, min_score, k), truths_of(samples, k), iou)
    return by_class, count_matches(per_class(inspections, min_score, None), truths_of(samples, None), iou)


def evaluate(args: argparse.Namespace) -> None:
    cv2.setNumThreads(1)
    model = DefectModel.load(args.model)
    samples = load_samples(args.data, args.split)
    decoding = {"flip": args.flip, "nms_iou": args.nms_iou, "vote_iou": None if args.no_vote else args.vote_iou}
    inspections, timings = [], []
    for sample in samples:
        image = cv2.imread(str(sample.image_path), cv2.IMREAD_GRAYSCALE)
        started = time.perf_counter()
        model.inspect(image, **decoding)
        timings.append(time.perf_counter() - started)
        inspections.append(model.inspect(image, min_score=AP_MIN_SCORE, **decoding))
    large = cv2.resize(cv2.imread(str(samples[0].image_path), cv2.IMREAD_COLOR_RGB), (1920, 1080))
    large_timings = []
    for _ in range(20):
        started = time.perf_counter()
        model.inspect(large, **decoding)
        large_timings.append(time.perf_counter() - started)

    truth = [s.label for s in samples]
    predicted = [LABELS.index(i.label) for i in inspections]
    matrix = confusion_matrix(truth, predicted, len(LABELS))
    print(
        f"model {args.model or 'shipped/VISIONFN_DEFECT_MODEL_PATH'}; split {args.split}: {len(samples)} images, "
        f"{sum(len(s.boxes) for s in samples)} boxes; decoding {decoding}"
    )
    print(f"class accuracy: {np.trace(matrix) / matrix.sum():.4f}")
    print("per-class recall: " + ", ".join(f"{label} {matrix[k, k] / max(matrix[k].sum(), 1):.3f}" for k, label in enumerate(LABELS)))
    width = max(len(label) for label in LABELS)
    print("confusion matrix (rows: true, columns: predicted):")
    print(" " * (width + 1) + " ".join(f"{label[:6]:>6}" for label in LABELS))
    for k, label in enumerate(LABELS):
        print(f"{label:>{width}} " + " ".join(f"{value:>6}" for value in matrix[k]))
    print(f"boxes at score >= {args.min_score}:")
    for iou in (0.3, 0.5):
        labelled, agnostic = box_scores(samples, inspections, args.min_score, iou)
        print(
            f"  IoU >= {iou}: recall {labelled.recall:.3f} precision {labelled.precision:.3f} (label must match); "
            f"class-agnostic recall {agnostic.recall:.3f} precision {agnostic.precision:.3f}"
        )
    for iou in (0.5, 0.3):
        aps = [average_precision(per_class(inspections, AP_MIN_SCORE, k), truths_of(samples, k), iou) for k in range(len(LABELS))]
        print(f"mAP@{iou}: {np.nanmean(aps):.3f} (" + ", ".join(f"{label} {ap:.3f}" for label, ap in zip(LABELS, aps, strict=True)) + ")")
    print(
        f"median inference: {np.median(timings) * 1000:.1f} ms at 200x200, {np.median(large_timings) * 1000:.1f} ms at 1920x1080 "
        "(one thread)"
    )
    if args.sweep:
        for threshold in SWEEP:
            cells = []
            for iou in (0.3, 0.5):
                labelled, _ = box_scores(samples, inspections, threshold, iou)
                f1 = 2 * labelled.recall * labelled.precision / max(labelled.recall + labelled.precision, 1e-9)
                cells.append(f"IoU {iou}: R {labelled.recall:.3f} P {labelled.precision:.3f} F1 {f1:.3f}")
            print(f"  score >= {threshold}: " + "; ".join(cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: VISIONFN_DEFECT_MODEL_PATH or the shipped one)")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="NEU-DET folder (images/, annotations/)")
    parser.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE, help="reporting threshold for box recall/precision")
    parser.add_argument("--sweep", action="store_true", help="also print recall/precision at several thresholds")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=FLIP, help="average over the left-right mirror")
    parser.add_argument("--nms-iou", type=float, default=NMS_IOU, help="per-class NMS overlap")
    parser.add_argument("--vote-iou", type=float, default=VOTE_IOU, help="box voting overlap")
    parser.add_argument("--no-vote", action="store_true", help="no box voting")
    evaluate(parser.parse_args(argv))


if __name__ == "__main__":
    main()
