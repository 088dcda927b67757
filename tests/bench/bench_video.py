"""Video anonymization benchmark: frames/s at 720p against deface, and per-face coverage.

    .venv/bin/python -m tests.bench.bench_video [--frames 60]

The clip is made here from a dev photo of the WIDER subset with known face boxes: a camera
pan and zoom over it, rendered at 1280x720 (two frames in ten smeared by motion blur) and
encoded as H.264. Prints, in one run:
- frames/s of our video pipeline (decode, detect, track, anonymize, encode) and of deface's
  detector + anonymization on the same decoded frames (deface's own per-frame loop, without
  its encoder);
- for each ground-truth face of the clip (>= 10 px in the frame), the fraction of frames in
  which it is covered (>= 70% of its box inside the anonymized region), for us and deface.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time

import cv2
import numpy as np

from shared.faces.anonymize import AnonymizeStyle, anonymize, coverage_mask, covered_regions
from shared.faces.privacy import FacePrivacy
from shared.faces.settings import get_face_settings
from shared.faces.video import FrameAnonymizer, anonymize_video
from tests.bench.bench_face import WIDER, load_rgb

CLIP_PHOTO = "images/0--Parade/0_Parade_Parade_0_205.jpg"  # 6 faces, 13 to 78 px (the crowd photo of the tests)
#: Frames (index % 10) smeared by a horizontal motion blur, as a fast pan does.
BLURRED_FRAMES = (4, 5)
STYLE = AnonymizeStyle()


def pan_zoom_clip(
    photo: np.ndarray, boxes: np.ndarray, frames: int, size: tuple[int, int] = (1280, 720), motion_blur: bool = False
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A camera pan (left to right) and zoom (1x to 1.5x) over ``photo``: the frames (RGB) and,
    per frame, the ground-truth ``boxes`` (x, y, w, h) moved with the camera; with
    ``motion_blur``, the ``BLURRED_FRAMES`` of every ten smeared 21 px sideways."""
    height, width = photo.shape[:2]
    out_width, out_height = size
    base = min(width / out_width, height / out_height)  # source pixels per output pixel at zoom 1
    rendered, moved = [], []
    for index in range(frames):
        t = index / max(1, frames - 1)
        zoom = 1.0 + 0.5 * t
        view_width, view_height = out_width * base / zoom, out_height * base / zoom
        left = (width - view_width) * t
        top = (height - view_height) * (0.5 - 0.3 * np.sin(np.pi * t))
        scale = out_width / view_width
        warp = np.array([[scale, 0, -left * scale], [0, scale, -top * scale]], np.float32)
        frame = cv2.warpAffine(photo, warp, size, flags=cv2.INTER_LINEAR)
        if motion_blur and index % 10 in BLURRED_FRAMES:
            frame = cv2.blur(frame, (21, 1))
        rendered.append(frame)
        moved.append(np.column_stack([(boxes[:, 0] - left) * scale, (boxes[:, 1] - top) * scale, boxes[:, 2] * scale, boxes[:, 3] * scale]))
    return rendered, moved


def encode_clip(frames: list[np.ndarray], fps: int = 25, audio: bool = False) -> bytes:
    """The RGB frames as an H.264 mp4 (with a 440 Hz tone as audio when asked)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        sound = container.add_stream("aac", rate=48000) if audio else None
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
        if sound is not None:
            samples = int(48000 * len(frames) / fps)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate = 48000
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return buffer.getvalue()


def coverage_by_face(found_per_frame: list, truth_per_frame: list[np.ndarray], size: tuple[int, int]) -> list[float]:
    """For each ground-truth face, the fraction of the frames where it is visible (>= 10 px,
    inside the frame) in which >= 70% of its box lies in the anonymized region."""
    width, height = size
    hits = np.zeros(len(truth_per_frame[0]))
    seen = np.zeros(len(truth_per_frame[0]))
    for found, truth in zip(found_per_frame, truth_per_frame, strict=True):
        mask = coverage_mask(covered_regions(found, width, height, STYLE.margin), width, height, STYLE.shape)
        for index, (x, y, w, h) in enumerate(np.round(truth).astype(int)):
            if max(w, h) < 10 or x < 0 or y < 0 or x + w > width or y + h > height:
                continue
            seen[index] += 1
            hits[index] += mask[y : y + h, x : x + w].mean() >= 0.7
    return [round(h / s, 3) for h, s in zip(hits, seen, strict=True) if s]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--detector", default=None, help="our detector setting (default: VISIONFN_FACE_DETECTOR)")
    options = parser.parse_args()

    items = {item["file"]: item for item in json.loads((WIDER / "ground_truth.json").read_text())}
    item = items[CLIP_PHOTO]
    boxes = np.array([f["bbox_xywh"] for f in item["faces"] if not f["invalid"]], np.float32)
    frames, truth = pan_zoom_clip(load_rgb(WIDER / CLIP_PHOTO), boxes, options.frames, motion_blur=True)
    clip = encode_clip(frames)
    privacy = FacePrivacy(get_face_settings())
    detector = privacy.detector(options.detector)

    results = {}
    tracked = FrameAnonymizer(detector, STYLE, track_frames=get_face_settings().face_video_track_frames)
    detector.detect(frames[0])  # warm-up
    started = time.perf_counter()
    result = anonymize_video(clip, tracked, keep_audio=False)
    ours_seconds = time.perf_counter() - started
    replay = FrameAnonymizer(detector, STYLE, track_frames=get_face_settings().face_video_track_frames)
    ours_found = [replay.faces(frame)[0] for frame in frames]
    untracked = [detector.detect(frame) for frame in frames]
    results["visionfn"] = {
        "detector": detector.name,
        "frames": result.frames,
        "fps_end_to_end": round(result.frames / ours_seconds, 2),
        "coverage_per_face": coverage_by_face(ours_found, truth, (1280, 720)),
        "coverage_per_face_without_tracking": coverage_by_face(untracked, truth, (1280, 720)),
    }
    from tests.bench.bench_face import DefaceReference

    deface = DefaceReference()
    deface.detect(frames[0])
    times, deface_found = [], []
    for frame in frames:
        started = time.perf_counter()
        found = deface.detect(frame)
        anonymize(frame, found, STYLE)
        times.append(time.perf_counter() - started)
        deface_found.append(found)
    results["deface"] = {
        "fps_detect_and_anonymize": round(1 / statistics.mean(times), 2),
        "coverage_per_face": coverage_by_face(deface_found, truth, (1280, 720)),
    }
    for name in ("visionfn", "deface"):
        coverage = results[name]["coverage_per_face"]
        results[name]["mean_coverage"] = round(float(np.mean(coverage)), 3) if coverage else None
    results["visionfn"]["mean_coverage_without_tracking"] = round(
        float(np.mean(results["visionfn"]["coverage_per_face_without_tracking"] or [0])), 3
    )
    results["clip"] = {
        "photo": CLIP_PHOTO,
        "size": "1280x720",
        "frames": options.frames,
        "faces": len(boxes),
        "motion_blurred_frames": f"{len(BLURRED_FRAMES)} of every 10",
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
