"""Matching benchmark: our overhead over raw OpenCV, the async overhead, and accuracy.

    make bench        (or: .venv/bin/python -m tests.bench.bench_matching [--runs 5] [--tasks 20])

Prints, in one run on this machine:
- compute time of each tool in process (decode, match, draw the result pictures) next to the
  raw OpenCV calls it wraps on the same files (imread + the matching calls), and their ratio;
- the async overhead: POST /api/v1/match/template through the gateway of a fresh platform
  until GET /api/v1/tasks/{uid} says done, minus the in-process compute time (p50/p95);
- feature accuracy on the Oxford affine sets: median reprojection error (px) of the estimated
  homography img1 -> img2..6 against the ground truth over a grid of img1 points, per detector;
- template hits on the OpenCV samples: crops of messi5.jpg (exact, noisy, brighter) found
  within 2 px, per method;
- surface accuracy: rotation/translation error of PPF+ICP on the Stanford bunny scans (pose
  of bun000 in bun045/bun315 from bun.conf; normals computed first) and on the
  parasaurolophus model placed in a scene (its denser scan) by a known transform.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from shared.matching.feature import FeatureParams, FeatureTool, create_detector, create_matcher, match_features, ratio_test
from shared.matching.pictures import encode_pictures, load_bgr
from shared.matching.settings import get_matching_settings
from shared.matching.surface import SurfaceParams, SurfaceTool, match_surface, moved_cloud
from shared.matching.template import METHODS, TemplateParams, TemplateTool, match_template
from tests.conftest import SHARED_DATA

SAMPLES = SHARED_DATA / "matching" / "opencv_samples"
OXFORD = SHARED_DATA / "matching" / "oxford_affine"
BUNNY = SHARED_DATA / "3d" / "stanford_bunny" / "data"
PARASAUROLOPHUS = SHARED_DATA / "3d" / "opencv_surface_matching"
SETTINGS = get_matching_settings()


def median_ms(function, runs: int) -> float:
    function()  # warm up (lazy initialisation, caches)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ply_bytes(cloud: np.ndarray) -> bytes:
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(cloud)}\n"
    header += "".join(f"property float {name}\n" for name in ("x", "y", "z", "nx", "ny", "nz")) + "end_header\n"
    return header.encode() + cloud.astype("<f4").tobytes()


def rotation_error_deg(estimated: np.ndarray, truth: np.ndarray) -> float:
    cosine = (np.trace(estimated[:3, :3].T @ truth[:3, :3]) - 1) / 2
    return round(float(np.degrees(np.arccos(np.clip(cosine, -1, 1)))), 3)


# --- our overhead over the raw calls ----------------------------------------------------------


def overhead_row(name: str, ours: float, raw: float, ours_core: float, raw_core: float, **extra: str) -> dict:
    """ours/raw: from file bytes (ours also draws the result pictures); *_core: on decoded arrays."""
    return {
        "input": name,
        **extra,
        "ours_ms": ours,
        "raw_opencv_ms": raw,
        "ratio": round(ours / raw, 2),
        "ours_core_ms": ours_core,
        "raw_core_ms": raw_core,
        "ratio_core": round(ours_core / raw_core, 2),
    }


def template_overhead(runs: int) -> dict:
    path = SAMPLES / "messi5.jpg"
    image = cv2.imread(str(path))
    template_path = Path("/tmp/visionfn-bench-template.png")
    cv2.imwrite(str(template_path), image[50:110, 200:260])
    inputs = [path.read_bytes(), template_path.read_bytes()]
    tool, params = TemplateTool(SETTINGS), TemplateParams()

    def raw_core(picture: np.ndarray, template: np.ndarray) -> None:
        cv2.minMaxLoc(cv2.matchTemplate(picture, template, cv2.TM_CCOEFF_NORMED))

    def raw() -> None:
        raw_core(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), cv2.imread(str(template_path), cv2.IMREAD_GRAYSCALE))

    gray = [cv2.imread(str(file), cv2.IMREAD_GRAYSCALE) for file in (path, template_path)]
    return overhead_row(
        "messi5.jpg 548x342, 60x60 crop, defaults",
        ours=median_ms(lambda: encode_pictures(tool.run(inputs, params).pictures), runs),
        raw=median_ms(raw, runs),
        ours_core=median_ms(lambda: match_template(image, image[50:110, 200:260], params), runs),
        raw_core=median_ms(lambda: raw_core(*gray), runs),
    )


def raw_feature_match(query: np.ndarray, train: np.ndarray, params: FeatureParams) -> None:
    detector = create_detector(params.detector)
    query_keypoints, query_descriptors = detector.detectAndCompute(query, None)
    train_keypoints, train_descriptors = detector.detectAndCompute(train, None)
    good = ratio_test(
        create_matcher(params.matcher, params.detector).knnMatch(query_descriptors, train_descriptors, k=2), params.ratio_threshold
    )
    if len(good) >= 4:
        source = np.float32([query_keypoints[m.queryIdx].pt for m in good])
        target = np.float32([train_keypoints[m.trainIdx].pt for m in good])
        cv2.findHomography(source, target, cv2.RANSAC, 5.0)


def feature_overhead(runs: int) -> list[dict]:
    tool, rows = FeatureTool(SETTINGS), []
    for query, train in (("box.png", "box_in_scene.png"), ("graf1.png", "graf3.png")):
        paths = [str(SAMPLES / query), str(SAMPLES / train)]
        inputs = [Path(file).read_bytes() for file in paths]
        arrays = [load_bgr(data, 10**8) for data in inputs]
        gray = [cv2.imread(file, cv2.IMREAD_GRAYSCALE) for file in paths]
        for detector in ("SIFT", "ORB", "AKAZE", "BRISK"):
            params = FeatureParams(detector=detector)
            rows.append(
                overhead_row(
                    f"{query} -> {train}",
                    ours=median_ms(lambda: encode_pictures(tool.run(inputs, params).pictures), runs),
                    raw=median_ms(lambda: raw_feature_match(*(cv2.imread(file, cv2.IMREAD_GRAYSCALE) for file in paths), params), runs),
                    ours_core=median_ms(lambda: match_features(*arrays, params), runs),
                    raw_core=median_ms(lambda: raw_feature_match(*gray, params), runs),
                    detector=detector,
                    matcher="FLANN",
                )
            )
    return rows


def placed_parasaurolophus() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model: the 6700-point scan; scene: the denser scan of the same object, moved by a known pose."""
    from shared.matching.ply import parse_point_cloud

    model = parse_point_cloud((PARASAUROLOPHUS / "parasaurolophus_6700.ply").read_bytes(), 10**6)
    dense = parse_point_cloud((PARASAUROLOPHUS / "parasaurolophus_low_normals2.ply").read_bytes(), 10**6)
    truth = np.eye(4)
    truth[:3, :3] = cv2.Rodrigues(np.array([0.5, -1.1, 0.3]))[0]
    truth[:3, 3] = [120.0, -40.0, 300.0]
    return model, moved_cloud(dense, truth).astype(np.float32), truth


def surface_overhead(runs: int) -> dict:
    model, scene, _ = placed_parasaurolophus()
    inputs = [ply_bytes(model), ply_bytes(scene)]
    tool, params = SurfaceTool(SETTINGS), SurfaceParams()

    def raw() -> None:
        detector = cv2.ppf_match_3d_PPF3DDetector(0.05, 0.05, 30)
        detector.trainModel(model)
        poses = detector.match(scene, 1.0 / 40, 0.05)
        cv2.ppf_match_3d_ICP(100, 0.005, 2.5, 8).registerModelToScene(model, scene, poses[:5])

    def raw_from_files() -> None:
        for data in inputs:
            np.frombuffer(data, "<f4", offset=data.index(b"end_header\n") + 11).reshape(-1, 6)
        raw()

    return overhead_row(
        f"parasaurolophus {len(model)} pts in a {len(scene)}-pt scene (binary PLY), defaults (ICP on)",
        ours=median_ms(lambda: encode_pictures(tool.run(inputs, params).pictures), runs),
        raw=median_ms(raw_from_files, runs),
        ours_core=median_ms(lambda: match_surface(model, scene, params, SETTINGS.surface_max_model_samples), runs),
        raw_core=median_ms(raw, runs),
    )


# --- the async path ------------------------------------------------------------------------------


def async_overhead(tasks: int, compute_ms: float) -> dict:
    from shared.platform.db.migrate import upgrade
    from tests.platform import running_platform
    from tests.postgres import postgres_url

    image = (SAMPLES / "messi5.jpg").read_bytes()
    template = cv2.imencode(".png", cv2.imread(str(SAMPLES / "messi5.jpg"))[50:110, 200:260])[1].tobytes()
    totals = []
    with postgres_url() as database_url:
        upgrade(database_url)
        with running_platform(database_url, name="bench-matching") as platform:
            session = platform.http
            for index in range(tasks + 1):
                started = time.perf_counter()
                response = session.post(
                    f"{platform.gateway}/api/v1/match/template",
                    files={"image": ("messi5.jpg", image), "template": ("t.png", template)},
                    timeout=30,
                )
                response.raise_for_status()
                uid = response.json()["uid"]
                while session.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=10).json()["status"] not in ("done", "error"):
                    time.sleep(0.005)
                if index:  # the first one warms the worker
                    totals.append((time.perf_counter() - started) * 1000)
    overheads = [total - compute_ms for total in totals]
    return {
        "path": "POST /api/v1/match/template (gateway) -> S3 + DB + SQS -> bridge -> worker -> DB; polled every 5 ms",
        "tasks": tasks,
        "submit_to_done_p50_ms": round(statistics.median(totals), 1),
        "compute_ms": compute_ms,
        "overhead_p50_ms": round(statistics.median(overheads), 1),
        "overhead_p95_ms": round(percentile(overheads, 0.95), 1),
    }


# --- accuracy --------------------------------------------------------------------------------------


def oxford_accuracy() -> dict:
    report: dict = {}
    for detector in ("SIFT", "ORB", "AKAZE", "BRISK"):
        rows, errors, times = {}, [], []
        for scene in sorted(path.name for path in OXFORD.iterdir()):
            first = load_bgr((OXFORD / scene / "img1.png").read_bytes(), 10**8)
            height, width = first.shape[:2]
            grid = np.float32([[x, y] for x in np.linspace(0, width - 1, 20) for y in np.linspace(0, height - 1, 20)]).reshape(-1, 1, 2)
            row = []
            for index in range(2, 7):
                other = load_bgr((OXFORD / scene / f"img{index}.png").read_bytes(), 10**8)
                truth = np.loadtxt(OXFORD / scene / f"H1to{index}p")
                started = time.perf_counter()
                result = match_features(first, other, FeatureParams(detector=detector))
                times.append((time.perf_counter() - started) * 1000)
                if result.located is None:
                    row.append(None)
                    continue
                estimated = cv2.perspectiveTransform(grid, result.located.homography)
                expected = cv2.perspectiveTransform(grid, truth)
                error = float(np.median(np.linalg.norm(estimated - expected, axis=2)))
                row.append(round(error, 2))
                errors.append(error)
            rows[scene] = row
        failures = sum(value is None or value > 10 for row in rows.values() for value in row)
        report[detector] = {
            "median_error_px_img2..6": rows,
            "pairs": len(errors),
            "pairs_over_10px_or_failed": failures,
            "median_time_ms": round(statistics.median(times), 1),
        }
    return report


def template_hits() -> dict:
    image = cv2.imread(str(SAMPLES / "messi5.jpg"))
    rng = np.random.default_rng(7)
    crops = []
    for _ in range(20):
        size = int(rng.integers(24, 80))
        x, y = int(rng.integers(0, image.shape[1] - size)), int(rng.integers(0, image.shape[0] - size))
        crops.append((x, y, image[y : y + size, x : x + size]))
    variants = {
        "exact": lambda crop: crop,
        "noise_sigma_10": lambda crop: np.clip(crop + rng.normal(0, 10, crop.shape), 0, 255).astype(np.uint8),
        "brighter_+30": lambda crop: np.clip(crop.astype(int) + 30, 0, 255).astype(np.uint8),
    }
    report = {}
    for method in METHODS:
        report[method] = {}
        for name, change in variants.items():
            hits = 0
            for x, y, crop in crops:
                result = match_template(image, change(crop), TemplateParams(method=method, threshold=0.1, max_results=1))
                best = result.matches[0]
                hits += abs(best.x - x) <= 2 and abs(best.y - y) <= 2
            report[method][name] = f"{hits}/{len(crops)}"
    return report


def bunny_scan(name: str) -> np.ndarray:
    text = (BUNNY / name).read_bytes()
    count = int(next(line for line in text[:4000].splitlines() if line.startswith(b"element vertex")).split()[2])
    points = np.array(text.split(b"end_header", 1)[1].split()[: count * 3], np.float32).reshape(count, 3)
    _, cloud = cv2.ppf_match_3d.computeNormalsPC3d(points, 12, True, (0.0, 0.0, 1.0))  # normals toward the scanner
    return cloud.astype(np.float32)


def bunny_truth(name: str) -> np.ndarray:
    """Pose of bun000 in scan ``name``: bun.conf gives p_in_bun000 = R(q)^T p + t."""
    line = next(line.split() for line in (BUNNY / "bun.conf").read_text().splitlines() if line.startswith(f"bmesh {name}"))
    tx, ty, tz, qx, qy, qz, qw = map(float, line[2:])
    rotation = np.array([
        [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
        [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
        [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)],
    ])  # fmt: skip
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = -rotation @ np.array([tx, ty, tz])
    return pose


def surface_accuracy() -> dict:
    report = {}
    model = bunny_scan("bun000.ply")
    for scene_name in ("bun045.ply", "bun315.ply"):
        scene, truth = bunny_scan(scene_name), bunny_truth(scene_name)
        started = time.perf_counter()
        result = match_surface(model, scene, SurfaceParams(), SETTINGS.surface_max_model_samples)
        report[f"bunny bun000 in {scene_name}"] = {
            "rotation_error_deg": rotation_error_deg(result.pose, truth) if result.pose is not None else None,
            "translation_error_mm": round(float(np.linalg.norm(result.pose[:3, 3] - truth[:3, 3])) * 1000, 2)
            if result.pose is not None
            else None,
            "poses_found": result.poses_found,
            "icp_residual": result.icp_residual,
            "time_ms": round((time.perf_counter() - started) * 1000),
            "model_size_mm": round(float(np.ptp(model[:, :3], axis=0).max()) * 1000),
        }
    model, scene, truth = placed_parasaurolophus()
    for use_icp in (False, True):
        started = time.perf_counter()
        result = match_surface(model, scene, SurfaceParams(use_icp=use_icp), SETTINGS.surface_max_model_samples)
        report[f"parasaurolophus placed by a known pose, ICP {'on' if use_icp else 'off'}"] = {
            "rotation_error_deg": rotation_error_deg(result.pose, truth),
            "translation_error": round(float(np.linalg.norm(result.pose[:3, 3] - truth[:3, 3])), 3),
            "model_size": round(float(np.ptp(model[:, :3], axis=0).max()), 1),
            "poses_found": result.poses_found,
            "time_ms": round((time.perf_counter() - started) * 1000),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=20)
    options = parser.parse_args()
    template = template_overhead(options.runs)
    report = {
        "machine": f"{os.cpu_count()} cores, OpenCV {cv2.__version__}",
        "overhead_vs_raw_opencv": {
            "template": template,
            "feature": feature_overhead(options.runs),
            "surface": surface_overhead(max(1, options.runs // 2)),
        },
        "async_overhead": async_overhead(options.tasks, template["ours_ms"]),
        "accuracy": {"feature_oxford": oxford_accuracy(), "template_hits": template_hits(), "surface": surface_accuracy()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
