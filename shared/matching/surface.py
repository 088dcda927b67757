"""3D surface matching: PPF (Drost et al.) voting for the model's pose in the scene, then ICP."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import Field

from shared.matching.ply import parse_point_cloud
from shared.matching.tool import MatchTool, ToolInput, ToolOutput, ToolParams
from shared.platform.errors import BadRequest, NotAPointCloud

#: Scene sampling and the scene points used as references, as in OpenCV's PPF sample.
SCENE_SAMPLING_STEP = 1.0 / 40
SCENE_REFERENCE_FRACTION = 0.05
#: The best PPF poses refined by ICP; the one with the smallest residual wins.
POSES_REFINED = 5
ICP_REJECTION_SCALE = 2.5
ICP_PYRAMID_LEVELS = 8
PICTURE_SIZE = 640
MIN_POINTS = 10


class SurfaceParams(ToolParams):
    relative_sampling_step: float = Field(0.05, ge=0.01, le=0.5)
    relative_distance_step: float = Field(0.05, ge=0.01, le=0.5)
    num_angles: int = Field(30, ge=1, le=360)
    use_icp: bool = True
    icp_tolerance: float = Field(0.005, gt=0, le=1.0)
    icp_iterations: int = Field(100, ge=1, le=1000)


@dataclass(frozen=True)
class SurfaceResult:
    pose: np.ndarray | None  # 4x4 model -> scene; None when no pose was found
    poses_found: int
    votes: int
    icp_residual: float | None
    sampled_model_points: int


def sampled_point_count(cloud: np.ndarray, relative_step: float) -> int:
    """How many points PPF training keeps at this step (its cost grows steeply with them)."""
    low, high = cloud[:, :3].min(axis=0), cloud[:, :3].max(axis=0)
    ranges = [np.array([low[axis], high[axis]], dtype=np.float32) for axis in range(3)]
    return len(cv2.ppf_match_3d.samplePCByQuantization(cloud, *ranges, relative_step, 0))


def ensure_solid(cloud: np.ndarray, role: str) -> None:
    """PPF needs extent along every axis: OpenCV's sampling divides by each axis' range (and
    crashes the process on a zero one), and a handful of points cannot vote for a pose."""
    if len(cloud) < MIN_POINTS:
        raise NotAPointCloud(f"The {role} has {len(cloud)} points; surface matching needs at least {MIN_POINTS}")
    flat = [axis for axis, extent in zip("xyz", np.ptp(cloud[:, :3], axis=0), strict=True) if extent <= 0]
    if flat:
        raise NotAPointCloud(
            f"The {role} is flat: every point has the same {' and '.join(flat)}; "
            "surface matching needs a surface with extent along x, y and z"
        )


def ensure_trainable(model: np.ndarray, params: SurfaceParams, max_samples: int) -> int:
    """The sampled model size; a clear error (with a step that would fit) when it is over the limit."""
    sampled = sampled_point_count(model, params.relative_sampling_step)
    if sampled <= max_samples:
        return sampled
    step = params.relative_sampling_step
    while step < 0.5 and sampled_point_count(model, step) > max_samples:
        step = round(step + 0.01, 2)
    raise BadRequest(
        f"relative_sampling_step={params.relative_sampling_step} keeps {sampled} model points for PPF training; "
        f"the limit is {max_samples} (training time grows steeply with them). "
        f"Use relative_sampling_step >= {step} or a smaller model"
    )


def match_surface(model: np.ndarray, scene: np.ndarray, params: SurfaceParams, max_samples: int) -> SurfaceResult:
    ensure_solid(model, "model")
    ensure_solid(scene, "scene")
    sampled = ensure_trainable(model, params, max_samples)
    try:
        detector = cv2.ppf_match_3d_PPF3DDetector(params.relative_sampling_step, params.relative_distance_step, params.num_angles)
        detector.trainModel(model)
        poses = detector.match(scene, SCENE_SAMPLING_STEP, SCENE_REFERENCE_FRACTION)
        if not poses:
            return SurfaceResult(None, 0, 0, None, sampled)
        best, residual = poses[0], None
        if params.use_icp:
            icp = cv2.ppf_match_3d_ICP(params.icp_iterations, params.icp_tolerance, ICP_REJECTION_SCALE, ICP_PYRAMID_LEVELS)
            _, refined = icp.registerModelToScene(model, scene, poses[:POSES_REFINED])
            best = min(refined, key=lambda pose: pose.residual)
            residual = round(float(best.residual), 6)
    except cv2.error as error:
        raise NotAPointCloud(f"Surface matching failed on these point clouds: {error.err}") from error
    pose = np.array(best.pose, dtype=np.float64)
    if not np.isfinite(pose).all() or (residual is not None and not np.isfinite(residual)):
        raise NotAPointCloud("Surface matching gave no finite pose: are the coordinates within a sane range?")
    return SurfaceResult(pose, len(poses), int(best.numVotes), residual, sampled)


def transform(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    return points[:, :3] @ pose[:3, :3].T + pose[:3, 3]


def moved_cloud(cloud: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """An (N, 6) cloud with points and normals moved by a 4x4 pose."""
    moved = cloud.copy()
    moved[:, :3] = transform(cloud, pose)
    moved[:, 3:] = cloud[:, 3:] @ pose[:3, :3].T
    return moved


def draw_placement(model: np.ndarray, scene: np.ndarray, pose: np.ndarray | None) -> np.ndarray:
    """Scene (grey) and the placed model (red) seen along the scene's least-spread axis."""
    centre = scene[:, :3].mean(axis=0)
    _, _, axes = np.linalg.svd(scene[:, :3] - centre, full_matrices=False)
    layers = [(scene[:, :3], (170, 170, 170), 1)]
    if pose is not None:
        layers.append((transform(model, pose), (0, 0, 255), 2))
    projected = [((points - centre) @ axes[:2].T, colour, size) for points, colour, size in layers]
    extent = max(float(np.abs(points).max()) for points, _, _ in projected) or 1.0
    scale = (PICTURE_SIZE / 2 - 10) / extent
    canvas = np.full((PICTURE_SIZE, PICTURE_SIZE, 3), 255, np.uint8)
    for points, colour, size in projected:
        pixels = np.clip(np.round(points * scale + PICTURE_SIZE / 2), 0, PICTURE_SIZE - 1).astype(int)
        for dx in range(size):
            for dy in range(size):
                canvas[np.clip(PICTURE_SIZE - 1 - pixels[:, 1] - dy, 0, None), np.clip(pixels[:, 0] + dx, None, PICTURE_SIZE - 1)] = colour
    return canvas


class SurfaceTool(MatchTool):
    name = "surface"
    params_model = SurfaceParams
    inputs = (ToolInput("model_file", "point_cloud"), ToolInput("scene_file", "point_cloud"))
    found_when = "poses_found"

    def run(self, inputs: list[bytes], params: SurfaceParams) -> ToolOutput:
        model, scene = (parse_point_cloud(data, self.settings.surface_max_points) for data in inputs)
        result = match_surface(model, scene, params, self.settings.surface_max_model_samples)
        return ToolOutput(
            result_data={
                "pose": np.round(result.pose, 8).tolist() if result.pose is not None else None,
                "poses_found": result.poses_found,
                "votes": result.votes,
                "num_model_points": len(model),
                "num_scene_points": len(scene),
                "sampled_model_points": result.sampled_model_points,
                "icp_residual": result.icp_residual,
            },
            pictures={"placement.png": draw_placement(model, scene, result.pose)},
        )
