"""The matching cores: template, feature and surface matching, PLY reading, file names."""

import cv2
import numpy as np
import pytest

from shared.matching.feature import FeatureParams, match_features
from shared.matching.pictures import load_bgr
from shared.matching.ply import parse_point_cloud
from shared.matching.service import safe_file_name
from shared.matching.surface import SurfaceParams, draw_placement, match_surface, moved_cloud
from shared.matching.template import METHODS, TemplateParams, find_matches, match_template
from shared.platform.errors import BadRequest, NotAPointCloud, PayloadTooLarge
from shared.platform.task_jobs import TaskJob
from tests.conftest import shared_data

BOX = "matching/opencv_samples/box.png"
BOX_IN_SCENE = "matching/opencv_samples/box_in_scene.png"
PARASAUROLOPHUS = "3d/opencv_surface_matching/parasaurolophus_6700.ply"


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Blurred noise: every window is distinct, so a crop has one exact match."""
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 0)


# --- template ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(set(METHODS) - {"TM_CCORR"}))  # raw CCORR favours bright windows
def test_every_method_ranks_the_true_location_first(method):
    image = _texture(120, 160)
    template = image[40:70, 90:130].copy()
    result = match_template(image, template, TemplateParams(method=method, threshold=0.99))
    best = result.matches[0]
    assert (best.x, best.y, best.w, best.h) == (90, 40, 40, 30)
    assert best.score == result.best_score == pytest.approx(1.0, abs=1e-3)


def test_sqdiff_normed_score_is_one_minus_the_distance():
    image = _texture(80, 80)
    template = image[10:30, 10:30].copy()
    raw = cv2.matchTemplate(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.cvtColor(template, cv2.COLOR_BGR2GRAY), cv2.TM_SQDIFF_NORMED)
    result = match_template(image, template, TemplateParams(method="TM_SQDIFF_NORMED", threshold=0.1))
    assert np.allclose(result.similarity, 1 - raw, atol=1e-6)


def test_every_copy_is_found_once_and_max_results_caps():
    image = np.full((200, 300, 3), 40, np.uint8)
    template = _texture(30, 30)
    for x, y in [(10, 10), (150, 40), (60, 140), (240, 160)]:
        image[y : y + 30, x : x + 30] = template
    found = match_template(image, template, TemplateParams(threshold=0.9))
    assert sorted((m.x, m.y) for m in found.matches) == [(10, 10), (60, 140), (150, 40), (240, 160)]
    assert found.matches_found >= 4
    capped = match_template(image, template, TemplateParams(threshold=0.9, max_results=2))
    assert len(capped.matches) == 2


def test_threshold_filters_weak_matches():
    image = _texture(100, 100, seed=1)
    template = _texture(20, 20, seed=2)  # not in the image
    result = match_template(image, template, TemplateParams(threshold=0.95))
    assert result.matches == [] and result.best_score < 0.95


def test_colour_matters_only_without_grayscale():
    red = np.zeros((20, 20, 3), np.uint8)
    red[5:15, 5:15] = (0, 0, 255)
    grey_level = int(cv2.cvtColor(red, cv2.COLOR_BGR2GRAY)[10, 10])
    grey = np.zeros_like(red)
    grey[5:15, 5:15] = grey_level  # the same luminance as the red square, another colour
    image = np.zeros((60, 120, 3), np.uint8)
    image[20:40, 10:30] = red
    image[20:40, 80:100] = grey
    params = {"method": "TM_SQDIFF_NORMED", "threshold": 0.99}
    in_grey = match_template(image, red, TemplateParams(**params, use_grayscale=True))
    in_colour = match_template(image, red, TemplateParams(**params, use_grayscale=False))
    assert sorted((m.x, m.y) for m in in_grey.matches) == [(10, 20), (80, 20)]
    assert [(m.x, m.y) for m in in_colour.matches] == [(10, 20)]


def test_template_larger_than_image_is_a_client_error():
    with pytest.raises(BadRequest, match="larger than the image"):
        match_template(_texture(20, 20), _texture(30, 10), TemplateParams())


@pytest.mark.parametrize(
    ("second_peak", "kept"),
    [
        ((10, 17), [(10, 10), (10, 40)]),  # IoU 0.48 with the best: one match
        ((10, 24), [(10, 10), (10, 24), (10, 40)]),  # IoU 0.18: both kept
    ],
)
def test_peaks_whose_boxes_overlap_are_one_match(second_peak, kept):
    # GIVEN three separate score peaks for a 20x20 template, the second near the first
    similarity = np.zeros((80, 80), np.float32)
    for (x, y), score in zip([(10, 10), second_peak, (10, 40)], [0.95, 0.9, 0.85], strict=True):
        similarity[y, x] = score
    # WHEN matched
    found, matches = find_matches(similarity, 20, 20, threshold=0.5, max_results=10)
    # THEN every peak is counted, and NMS (IoU above 0.3) keeps the best of an overlap
    assert found == 3
    assert [(m.x, m.y) for m in matches] == kept
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


# --- feature ----------------------------------------------------------------------------------


@pytest.mark.parametrize("detector", ["SIFT", "ORB", "AKAZE", "BRISK"])
@pytest.mark.parametrize("matcher", ["FLANN", "BFMatcher"])
def test_every_detector_and_matcher_locates_the_box(detector, matcher):
    query, train = (load_bgr(shared_data(name), 10**8) for name in (BOX, BOX_IN_SCENE))
    result = match_features(query, train, FeatureParams(detector=detector, matcher=matcher))
    assert len(result.good) >= 15
    assert result.located is not None and result.located.outline is not None
    # the box's corners in the scene, read off the picture (within a few pixels)
    expected = np.array([[118, 161], [284, 175], [268, 298], [89, 273]])
    assert np.abs(result.located.outline - expected).max() < 8


def test_stricter_ratio_keeps_fewer_matches():
    query, train = (load_bgr(shared_data(name), 10**8) for name in (BOX, BOX_IN_SCENE))
    loose = match_features(query, train, FeatureParams(ratio_threshold=0.9))
    strict = match_features(query, train, FeatureParams(ratio_threshold=0.5))
    assert 0 < len(strict.good) < len(loose.good)


def test_featureless_images_give_no_matches_not_an_error():
    blank = np.full((100, 100, 3), 128, np.uint8)
    for detector in ("SIFT", "ORB", "AKAZE", "BRISK"):
        result = match_features(blank, _texture(100, 100), FeatureParams(detector=detector))
        assert result.good == [] and result.located is None


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (1, 500), (500, 15)])
def test_images_too_small_for_the_detectors_are_client_errors(shape):
    with pytest.raises(BadRequest, match="feature matching needs at least 16 px on each side"):
        match_features(_texture(100, 100), _texture(*shape), FeatureParams(detector="ORB"))


# --- PLY --------------------------------------------------------------------------------------


def _ply(points: np.ndarray, fmt: str = "ascii", properties=("x", "y", "z", "nx", "ny", "nz"), extra_header="") -> bytes:
    header = f"ply\nformat {fmt} 1.0\ncomment made by a test\n{extra_header}element vertex {len(points)}\n"
    header += "".join(f"property float {name}\n" for name in properties) + "end_header\n"
    if fmt == "ascii":
        body = "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in points).encode()
    else:
        body = points.astype("<f4" if fmt == "binary_little_endian" else ">f4").tobytes()
    return header.encode() + body


POINTS = np.array([[0, 0, 0, 0, 0, 2], [1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 3, 0]], np.float32)


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
def test_ply_formats_read_alike_with_unit_normals(fmt):
    cloud = parse_point_cloud(_ply(POINTS, fmt), 100)
    assert cloud.dtype == np.float32 and cloud.shape == (3, 6)
    assert np.allclose(cloud[:, :3], POINTS[:, :3])
    assert np.allclose(np.linalg.norm(cloud[:, 3:], axis=1), 1)


def test_ply_with_windows_line_ends_like_the_stanford_scans():
    assert np.allclose(parse_point_cloud(_ply(POINTS).replace(b"\n", b"\r\n"), 100)[:, :3], POINTS[:, :3])


def test_ply_with_faces_after_the_vertices_and_extra_properties():
    points = np.hstack([POINTS, np.full((3, 1), 7, np.float32)])
    data = _ply(points, "binary_little_endian", ("x", "y", "z", "nx", "ny", "nz", "intensity"))
    data = data.replace(b"end_header", b"element face 1\nproperty list uchar int vertex_indices\nend_header")
    data += bytes([3]) + np.array([0, 1, 2], "<i4").tobytes()
    assert np.allclose(parse_point_cloud(data, 100)[:, :3], POINTS[:, :3])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n rest of a picture", "not a PLY"),
        (_ply(POINTS, properties=("x", "y", "z")), "no normals"),
        (_ply(POINTS[:0]), "no points"),
        (_ply(np.array([[0, 0, np.nan, 0, 0, 1], *POINTS.tolist()], np.float32)), "NaN"),
        (_ply(np.array([[0, 0, 0, 0, 0, 0]], np.float32)), "zero normal"),
        (_ply(POINTS, "binary_little_endian")[:-5], "truncated"),
        (_ply(POINTS).replace(b"0.000000 0.000000 2.000000", b"0.0 zero 2.0"), "not a number"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n", "end_header"),
        (b"ply\nformat nonsense 1.0\nend_header\n", "not supported"),
        (_ply(POINTS, "binary_little_endian", ("x", "y", "z", "nx", "ny", "nz", "x")), "twice"),
    ],
)
def test_bad_ply_gets_a_clear_client_error(data, message):
    with pytest.raises(NotAPointCloud, match=message):
        parse_point_cloud(data, 100)


def _solid_ply(value: str, at: int = 4) -> bytes:
    """12 points with extent along x, y and z (enough for surface matching), as doubles, the x
    of vertex ``at`` written as ``value``."""
    header = "ply\nformat ascii 1.0\nelement vertex 12\n" + "".join(f"property double {n}\n" for n in ("x", "y", "z", "nx", "ny", "nz"))
    rows = [[str(i % 3), str(i % 4), str(i % 5), "0", "0", "1"] for i in range(12)]
    rows[at][0] = value
    return (header + "end_header\n" + "".join(" ".join(row) + "\n" for row in rows)).encode()


@pytest.mark.parametrize("value", ["3.5e38", "-1e39", "1e308", "1e20", "-1e19", "inf", "-inf", "nan"])
def test_ply_values_beyond_float32_are_refused_by_value(value):
    """Float32 ends at 3.4e38 and OpenCV squares coordinates (distances, normals): 1e18 at most."""
    with pytest.raises(NotAPointCloud, match=r"^1 of 12 PLY vertices hold NaN, infinite or out-of-range values .*first at vertex 4\)"):
        parse_point_cloud(_solid_ply(value), 100)


@pytest.mark.parametrize("value", ["1e18", "-1e18", "123456.75"])
def test_ply_values_within_the_limit_are_read(value):
    cloud = parse_point_cloud(_solid_ply(value), 100)
    assert cloud[4, 0] == np.float32(float(value))
    assert np.isfinite(cloud).all() and np.isfinite(np.square(cloud.astype(np.float32))).all()


def test_too_many_points_is_413():
    with pytest.raises(PayloadTooLarge, match="3 points; the limit is 2"):
        parse_point_cloud(_ply(POINTS), 2)


# --- surface ----------------------------------------------------------------------------------


def _rotation_error_degrees(estimated: np.ndarray, truth: np.ndarray) -> float:
    cosine = (np.trace(estimated[:3, :3].T @ truth[:3, :3]) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))


def test_model_placed_in_a_scene_by_a_known_pose_is_found():
    model = parse_point_cloud(shared_data(PARASAUROLOPHUS), 10**6)
    truth = np.eye(4)
    truth[:3, :3] = cv2.Rodrigues(np.array([0.4, -0.7, 0.2]))[0]
    truth[:3, 3] = [30.0, -12.0, 55.0]
    scene = moved_cloud(model, truth).astype(np.float32)
    scene = scene[np.random.default_rng(0).permutation(len(scene))[: len(scene) * 2 // 3]]  # a partial view
    result = match_surface(model, scene, SurfaceParams(relative_sampling_step=0.07), max_samples=1500)
    assert result.poses_found > 0 and result.icp_residual is not None
    assert _rotation_error_degrees(result.pose, truth) < 2
    assert np.linalg.norm(result.pose[:3, 3] - truth[:3, 3]) < 2  # model is ~ 600 units long
    picture = draw_placement(model, scene, result.pose)
    assert picture.shape == (640, 640, 3) and (picture[:, :, 2] > picture[:, :, 1]).any()  # red model drawn


def test_sampling_step_that_would_train_too_long_is_refused_with_a_step_that_fits():
    model = parse_point_cloud(shared_data(PARASAUROLOPHUS), 10**6)
    with pytest.raises(BadRequest, match=r"relative_sampling_step=0.02 keeps \d+ model points.*>= 0\.\d+"):
        match_surface(model, model, SurfaceParams(relative_sampling_step=0.02), max_samples=300)


def _sphere(count: int, flat_z: bool = False) -> np.ndarray:
    points = np.random.default_rng(1).normal(size=(count, 3))
    if flat_z:
        points[:, 2] = 0  # OpenCV's sampling crashes the process on such a cloud
    normals = points / np.linalg.norm(points, axis=1, keepdims=True)
    return np.hstack([points, normals]).astype(np.float32)


@pytest.mark.parametrize(
    ("model", "scene", "message"),
    [
        (_sphere(200, flat_z=True), _sphere(200), "The model is flat: every point has the same z"),
        (_sphere(200), _sphere(200, flat_z=True), "The scene is flat"),
        (np.tile(_sphere(1), (20, 1)), _sphere(200), "the same x and y and z"),
        (_sphere(200), _sphere(4), "The scene has 4 points; surface matching needs at least 10"),
        (_sphere(200) * np.float32([1e30, 1e30, 1e30, 1, 1, 1]), _sphere(200), "no finite pose"),
    ],
)
def test_degenerate_clouds_are_client_errors_not_crashes(model, scene, message):
    with pytest.raises(NotAPointCloud, match=message):
        match_surface(model, scene, SurfaceParams(), max_samples=1500)


# --- names and messages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("photo 1.png", "photo_1.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\scan.ply", "scan.ply"),
        (".hidden", "hidden"),
        ("", "image"),
        (None, "image"),
        ("..", "image"),
        ("naïve<script>.jpg", "na_ve_script_.jpg"),
        ("x" * 300 + ".png", "x" * 96 + ".png"),
    ],
)
def test_file_names_become_harmless_key_segments(filename, expected):
    assert safe_file_name(filename, "image") == expected


@pytest.mark.parametrize("body", ['{"uid": "../x"}', '{"uid": "ABC"}', "{}", "not json"])
def test_job_message_needs_a_task_uid(body):
    with pytest.raises(ValueError):
        TaskJob.model_validate_json(body)
