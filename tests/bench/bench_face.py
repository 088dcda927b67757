"""Face privacy benchmark: speed at 1080p/4K, HTTP end to end, anonymization recall on WIDER.

    make bench        (or: .venv/bin/python -m tests.bench.bench_face [--runs 20] [--http 30])

Prints, in one run on this machine, for each detector setting of ours and for the reference
tool `deface` (its own CenterFace code, threshold 0.2, mask scale 1.3, ellipse):
- detect+anonymize time, in process, at 1920x1080 and 3840x2160 (median of --runs; the
  contenders take turns, one call each per round);
- anonymization recall on ../shared/data/faces/wider_subset: a labelled face (not invalid,
  >= 10 px) counts as covered when >= 70% of its box lies inside the anonymized region;
  overall, on faces >= 20 px and >= 40 px, and by WIDER's easy/medium/hard sets;
- false positives per image: detections that touch no labelled face at all (invalid and
  tiny faces included); both also on each half of the photos (even and odd positions);
- the curve of recall against false positives of the fused detector's two profiles and of
  deface, their thresholds scaled together (``curves``);
- POST /process through the gateway of a running platform (p50/p95).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from shared.faces.anonymize import AnonymizeStyle, anonymize, coverage_mask, covered_regions
from shared.faces.detections import FaceDetections
from shared.faces.detectors import FusedDetector, fuse_scores, in_image, network_input
from shared.faces.privacy import FacePrivacy
from shared.faces.settings import get_face_settings
from tests.conftest import CROWD_PHOTO, SHARED_DATA

WIDER = SHARED_DATA / "faces" / "wider_subset"
#: our contenders: each detector, and the fused detector's thorough profile ("<detector> <profile>")
OURS = ("fused", "fused thorough", "combined", "centerface", "retinaface", "mediapipe")
STYLE = AnonymizeStyle()  # blur, ellipse, margin 0.3 (deface's mask scale 1.3)


class DefaceReference:
    """deface 1.5.0's CenterFace as its command line runs it (OpenCV backend, full-size input)."""

    name = "deface (reference)"

    def __init__(self, threshold: float = 0.2) -> None:
        from deface.centerface import CenterFace

        self.model = CenterFace(backend="opencv")
        self.threshold = threshold

    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> FaceDetections:
        found, _landmarks = self.model(rgb, threshold=self.threshold if threshold is None else threshold)
        return FaceDetections.from_corners(found[:, :4], found[:, 4])


def load_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def evaluate_recall(detector, items: list[dict]) -> dict:
    """Recall and false positives of ``detector`` on ``items``, overall and on each half of them
    (even and odd positions in ground_truth.json: choose on one, confirm on the other)."""
    found = []
    for item in items:
        rgb = load_rgb(WIDER / item["file"])
        found.append((detector.detect(rgb), rgb.shape[1], rgb.shape[0]))
    return score_detections(found, items)


def score_detections(detections: list[tuple[FaceDetections, int, int]], items: list[dict]) -> dict:
    """The report of evaluate_recall from each item's detections and its image's width and height."""
    covered = {"all": [0, 0], ">=20px": [0, 0], ">=40px": [0, 0], "easy": [0, 0], "medium": [0, 0], "hard": [0, 0]}
    halves = {"even": [0, 0, 0], "odd": [0, 0, 0]}  # covered, faces, false positives
    false_positives = 0
    for index, (item, (found, width, height)) in enumerate(zip(items, detections, strict=True)):
        half = halves["odd" if index % 2 else "even"]
        before = false_positives
        mask = coverage_mask(covered_regions(found, width, height, STYLE.margin), width, height, STYLE.shape)
        labelled = np.array([face["bbox_xywh"] for face in item["faces"]], float).reshape(-1, 4)
        for face in item["faces"]:
            x, y, w, h = face["bbox_xywh"]
            if face["invalid"] or max(w, h) < 10:
                continue
            hit = mask[y : y + h, x : x + w].mean() >= 0.7
            groups = ["all"] + [g for g, size in ((">=20px", 20), (">=40px", 40)) if max(w, h) >= size]
            groups += [subset for subset in ("easy", "medium", "hard") if subset in face.get("in_eval_subsets", [])]
            for group in groups:
                covered[group][0] += hit
                covered[group][1] += 1
            half[0] += hit
            half[1] += 1
        for x, y, w, h in found.boxes:
            touches = (
                (labelled[:, 0] <= x + w)
                & (labelled[:, 0] + labelled[:, 2] >= x)
                & (labelled[:, 1] <= y + h)
                & (labelled[:, 1] + labelled[:, 3] >= y)
            )
            false_positives += not touches.any()
        half[2] += false_positives - before
    report = {group: f"{hits / total:.3f} ({hits}/{total})" for group, (hits, total) in covered.items()}
    report["recall"] = covered["all"][0] / covered["all"][1]
    report["false_positives_per_image"] = round(false_positives / len(items), 2)
    for name, (hits, total, wrong) in halves.items():
        images = len(items[name == "odd" :: 2])
        report[name] = f"recall {hits / total:.3f} ({hits}/{total}), FP/image {wrong / images:.2f}"
    return report


#: the curves' points: every threshold of a contender times each factor (1: its chosen point)
CURVE_FACTORS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5)


def curves(fused: dict[str, FusedDetector], deface: DefaceReference, items: list[dict]) -> dict[str, list[dict]]:
    """Recall against false positives per image (overall and per half) of each fused profile and
    of deface, every threshold of each multiplied by each of CURVE_FACTORS: deface's threshold;
    the fused detector's sure, candidate and confirm scores together. The networks run once per
    photo at the lowest thresholds; each point keeps what clears its own (the same faces as a run
    at those thresholds: both NMS keep a face unless a higher-scoring one overlaps it)."""
    lowest = min(CURVE_FACTORS)
    found: dict[str, list[dict[float, FaceDetections]]] = {name: [] for name in [*fused, "deface"]}
    sizes = []
    for item in items:
        rgb = load_rgb(WIDER / item["file"])
        sizes.append((rgb.shape[1], rgb.shape[0]))
        everything = DefaceReference.detect(deface, rgb, deface.threshold * lowest)
        found["deface"].append({k: everything.above(deface.threshold * k) for k in CURVE_FACTORS})
        for name, detector in fused.items():
            resized, factors = network_input(rgb, detector.centerface.max_input_side)
            first = detector.centerface.find(resized, detector.candidate_score * lowest, detector.flip)
            second = detector.retinaface.find(resized, detector.confirm_score * lowest)
            found[name].append(
                {
                    k: in_image(
                        fuse_scores(
                            first.above(detector.candidate_score * k),
                            second.above(detector.confirm_score * k),
                            detector.sure_score * k,
                            detector.match_iou,
                        ),
                        factors,
                        rgb,
                    )
                    for k in CURVE_FACTORS
                }
            )
    report = {}
    for name, per_photo in found.items():
        report[name] = []
        for k in CURVE_FACTORS:
            scored = score_detections([(by_factor[k], *size) for by_factor, size in zip(per_photo, sizes, strict=True)], items)
            report[name].append(
                {
                    "factor": k,
                    "recall": round(scored["recall"], 3),
                    "false_positives_per_image": scored["false_positives_per_image"],
                    "even": scored["even"],
                    "odd": scored["odd"],
                }
            )
    return report


def time_frames(contenders: dict, frame: np.ndarray, runs: int) -> dict[str, float]:
    """Median detect + anonymize time (ms) of each contender on ``frame``. The contenders take
    turns, one call each per round, so that a change of load on the machine falls on all of them."""
    for detector in contenders.values():
        anonymize(frame, detector.detect(frame), STYLE)  # warm-up (model load, allocation)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, detector in contenders.items():
            started = time.perf_counter()
            anonymize(frame, detector.detect(frame), STYLE)
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: round(statistics.median(values), 1) for name, values in times.items()}


def http_end_to_end(jpeg_1080p: bytes, requests_count: int) -> dict:
    from shared.platform.db.migrate import upgrade
    from tests.platform import running_platform
    from tests.postgres import postgres_url

    with postgres_url() as database_url:
        upgrade(database_url)
        with running_platform(database_url, name="bench-face") as platform:
            session = platform.http
            url = f"{platform.gateway}/process"
            session.post(url, files={"image": jpeg_1080p}, timeout=60).raise_for_status()  # loads the models
            times = []
            for _ in range(requests_count):
                started = time.perf_counter()
                session.post(url, files={"image": jpeg_1080p}, timeout=60).raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
    ordered = sorted(times)
    return {
        "request": f"POST /process, 1920x1080 JPEG ({len(jpeg_1080p) // 1024} KiB), default detector, x {requests_count}",
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--http", type=int, default=30)
    parser.add_argument("--detectors", default=",".join(OURS), help="ours to measure beside deface, a comma list")
    parser.add_argument("--no-curves", dest="curves", action="store_false", help="skip the recall/false positive curves")
    options = parser.parse_args()

    items = json.loads((WIDER / "ground_truth.json").read_text())
    photo = load_rgb(SHARED_DATA / CROWD_PHOTO)
    frames = {"1080p": cv2.resize(photo, (1920, 1080)), "4K": cv2.resize(photo, (3840, 2160))}
    privacy = FacePrivacy(get_face_settings())
    ours = options.detectors.split(",")
    contenders = {name: privacy.detector(*name.split(" ")) for name in ours}  # type: ignore[arg-type]
    contenders["deface"] = DefaceReference()

    ms_1080p = time_frames(contenders, frames["1080p"], options.runs)
    ms_4k = time_frames(contenders, frames["4K"], options.runs)
    results = {}
    for name, detector in contenders.items():
        results[name] = {"ms_1080p": ms_1080p[name], "ms_4k": ms_4k[name], **evaluate_recall(detector, items)}
        if hasattr(detector, "stage_ms"):  # the time of each stage, one call
            detector.detect(frames["1080p"])
            results[name]["stages_ms_1080p"] = detector.stage_ms
            detector.detect(frames["4K"])
            results[name]["stages_ms_4k"] = detector.stage_ms
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    reference = results["deface"]
    for name in ours:
        results[name]["time_vs_deface_4k"] = round(results[name]["ms_4k"] / reference["ms_4k"], 3)
        results[name]["time_vs_deface_1080p"] = round(results[name]["ms_1080p"] / reference["ms_1080p"], 3)
        results[name]["recall_vs_deface"] = round(results[name]["recall"] / reference["recall"], 3)
    buffer = io.BytesIO()
    from PIL import Image

    Image.fromarray(frames["1080p"]).save(buffer, "JPEG", quality=90)
    if options.http:
        results["http"] = http_end_to_end(buffer.getvalue(), options.http)
    if options.curves:
        profiles = {name: privacy.detector("fused", profile) for name, profile in (("fused", "default"), ("fused thorough", "thorough"))}
        results["curves"] = curves(profiles, contenders["deface"], items)  # type: ignore[arg-type]
    results["settings"] = {"max_input_side": privacy.settings.face_max_input_side, "images": len(items)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
