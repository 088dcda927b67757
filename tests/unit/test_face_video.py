"""Face video cores: tracking across frames, score fusion of two detectors, RetinaFace decoding,
probing (limits, corrupt and truncated files), the limits on what is decoded (crafted videos
whose headers say less than their frames hold) and the H.264 output."""

import io
import time

import av
import numpy as np
import pytest

from shared.faces.anonymize import AnonymizeStyle
from shared.faces.detections import FaceDetections
from shared.faces.detectors import decode_retinaface, fuse_scores, in_image
from shared.faces.settings import FaceSettings
from shared.faces.tracking import FaceTracker
from shared.faces.video import (
    DEFAULT_LIMITS,
    FrameAnonymizer,
    FrameBudget,
    NotAVideo,
    VideoLimits,
    anonymize_video,
    probe_video,
)
from shared.faces.video_tasks import limits_of
from shared.platform.errors import PayloadTooLarge
from shared.vision.boxes import pairwise_iou
from tests.bench.bench_video import encode_clip
from tests.crafted_videos import EIGHT_K, stamped_mp4, switching_size_webm
from tools.fetch_models import unpack

LIMITS = VideoLimits(max_bytes=10_000_000, max_seconds=60, max_pixels=1920 * 1080)


def _faces(*boxes, scores=None):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return FaceDetections(boxes, np.array(scores or [0.9] * len(boxes), np.float32))


# --- tracking --------------------------------------------------------------------------------------
def test_a_face_missed_for_a_few_frames_stays_covered_where_it_moved():
    """GIVEN a face moving 10 px per frame to the right, detected in frames 0-4 and 8-9 only
    WHEN each frame's detections go through the tracker
    THEN frames 5-7 still cover the face at its true position."""
    tracker = FaceTracker(max_missed=3)
    for frame in range(10):
        truth = np.array([[100 + 10 * frame, 50, 40, 40]], np.float32)
        seen = frame not in (5, 6, 7)
        covered = tracker.update(_faces(truth[0]) if seen else FaceDetections.empty(), 640, 360)
        assert len(covered) == 1, frame
        assert pairwise_iou(covered.boxes, truth)[0, 0] > 0.6, (frame, covered.boxes)


def test_a_lost_track_ends_after_max_missed_frames_and_two_faces_keep_their_own_tracks():
    tracker = FaceTracker(max_missed=2)
    tracker.update(_faces([10, 10, 30, 30], [200, 10, 30, 30]), 640, 360)
    assert len(tracker.update(_faces([200, 10, 30, 30]), 640, 360)) == 2  # the first coasts
    assert len(tracker.update(_faces([200, 10, 30, 30]), 640, 360)) == 2
    assert len(tracker.update(_faces([200, 10, 30, 30]), 640, 360)) == 1  # missed 3 > 2: gone
    assert len(tracker.tracks) == 1


def test_without_tracking_frames_a_missed_face_is_not_covered():
    tracker = FaceTracker(max_missed=0)
    tracker.update(_faces([10, 10, 30, 30]), 640, 360)
    assert len(tracker.update(FaceDetections.empty(), 640, 360)) == 0


def test_a_track_that_leaves_the_frame_is_dropped():
    tracker = FaceTracker(max_missed=10)
    for x in (580, 595, 610):
        tracker.update(_faces([x, 10, 30, 30]), 640, 360)
    assert len(tracker.tracks) == 1
    for _ in range(6):
        covered = tracker.update(FaceDetections.empty(), 640, 360)
    assert len(covered) == 0 and not tracker.tracks


class _Flaky:
    """A detector that finds the one face except in the frames listed."""

    name, model_name = "flaky", "none"

    def __init__(self, box, missed):
        self.box, self.missed, self.frame = box, set(missed), -1

    def detect(self, rgb):
        self.frame += 1
        return FaceDetections.empty() if self.frame in self.missed else _faces(self.box)


def test_frame_anonymizer_blurs_a_face_in_the_frames_its_detector_missed():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    work = FrameAnonymizer(_Flaky([40, 30, 40, 40], missed=[2, 3]), AnonymizeStyle(shape="rectangle", margin=0), track_frames=3)
    for index in range(5):
        output, detected, covered = work(frame)
        assert covered == 1 and detected == (0 if index in (2, 3) else 1)
        assert not np.array_equal(output[30:70, 40:80], frame[30:70, 40:80]), index
        assert np.array_equal(output[:, :30], frame[:, :30])  # away from the face: untouched


# --- fusion ----------------------------------------------------------------------------------------
def test_fusion_keeps_sure_faces_and_unsure_ones_the_second_detector_confirms():
    first = _faces([0, 0, 20, 20], [100, 100, 20, 20], [300, 300, 20, 20], scores=[0.8, 0.2, 0.2])
    second = _faces([102, 100, 20, 20], [500, 10, 30, 30], scores=[0.4, 0.99])
    fused = fuse_scores(first, second, sure_score=0.3, match_iou=0.3)
    order = np.argsort(fused.boxes[:, 0])
    assert fused.boxes[order].tolist() == [[0, 0, 20, 20], [101, 100, 20, 20]]  # the confirmed box: the mean
    assert fused.scores[order].tolist() == pytest.approx([0.8, 0.4])


def test_fusion_with_nothing_confirmed_keeps_only_the_sure_faces():
    first = _faces([0, 0, 20, 20], [100, 100, 20, 20], scores=[0.5, 0.1])
    assert len(fuse_scores(first, FaceDetections.empty(), 0.3, 0.3)) == 1
    assert len(fuse_scores(FaceDetections.empty(), _faces([1, 1, 5, 5]), 0.3, 0.3)) == 0


def test_one_confirmation_confirms_one_face_only():
    first = _faces([100, 100, 20, 20], [101, 101, 20, 20], scores=[0.2, 0.2])
    fused = fuse_scores(first, _faces([100, 100, 20, 20], scores=[0.5]), 0.3, 0.3)
    assert len(fused) == 1


def test_retinaface_decoding_of_a_zero_regression_is_its_anchor():
    anchors = np.array([[50, 40, 16, 16], [10, 10, 32, 32]], np.float32)
    found = decode_retinaface(np.zeros((2, 4), np.float32), np.array([0.9, 0.1], np.float32), anchors, 0.5)
    assert found.boxes.tolist() == [[42, 32, 16, 16]]
    assert found.scores.tolist() == pytest.approx([0.9])
    image = np.zeros((100, 200, 3), np.uint8)  # found in a copy half as wide
    assert in_image(found, np.array([2, 1, 2, 1], np.float32), image).boxes.tolist() == [[84, 32, 32, 16]]


def test_model_unpacking_reads_a_bytes_literal_without_running_it():
    assert unpack(b"WEIGHTS = b'\\x08\\x06onnx'\n", "python_bytes") == b"\x08\x06onnx"
    assert unpack(b"raw", "raw") == b"raw"
    with pytest.raises(ValueError):
        unpack(b"WEIGHTS = __import__('os').system('true')\n", "python_bytes")


# --- containers ------------------------------------------------------------------------------------
def _frames(count=8, size=(160, 120)):
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def clip() -> bytes:
    return encode_clip(_frames(), fps=10, audio=True)


def test_probe_reads_a_clip(clip):
    info = probe_video(clip, LIMITS)
    assert (info.container, info.codec, info.width, info.height, info.frames, info.has_audio) == ("mp4/mov", "h264", 160, 120, 8, True)
    assert info.seconds == pytest.approx(0.8, abs=0.15)


@pytest.mark.parametrize("data", [b"", b"not a video at all" * 50, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100])
def test_probe_refuses_what_is_not_a_video(data):
    with pytest.raises(NotAVideo):
        probe_video(data, LIMITS)


def test_probe_refuses_a_truncated_clip(clip):
    faststart = anonymize_video(clip, lambda rgb: (rgb, 0, 0), keep_audio=False).data  # index first
    for cut in (len(faststart) // 2, len(faststart) - 200):
        with pytest.raises(NotAVideo):
            probe_video(faststart[:cut], LIMITS)
    with pytest.raises(NotAVideo):
        probe_video(clip[: len(clip) // 2], LIMITS)  # index last, cut off


@pytest.mark.parametrize("limits", [VideoLimits(1000, 60, 10**7), VideoLimits(10**7, 0.3, 10**7), VideoLimits(10**7, 60, 100 * 100)])
def test_probe_refuses_videos_over_the_limits(clip, limits):
    with pytest.raises(PayloadTooLarge):
        probe_video(clip, limits)


# --- limits on what is decoded --------------------------------------------------------------------
def test_limits_derive_max_frames_and_decoded_pixels_and_the_defaults_are_the_settings():
    limits = VideoLimits(max_bytes=64 * 1024 * 1024, max_seconds=120, max_pixels=1920 * 1080)
    assert (limits.max_fps, limits.max_frames, limits.max_decoded_pixels) == (60, 7200, 7200 * 1920 * 1080)
    assert VideoLimits(10, 2.5, 100, max_fps=30).max_frames == 75
    assert VideoLimits(10, 60, 100, max_frames=5, max_decoded_pixels=7).max_decoded_pixels == 7
    assert limits_of(FaceSettings.model_construct()) == DEFAULT_LIMITS == limits


SMALL = VideoLimits(max_bytes=10**9, max_seconds=60, max_pixels=100 * 100, max_frames=4, max_decoded_pixels=25_000)


@pytest.mark.parametrize(
    ("frames", "refused_at", "limit"),
    [
        ([(100, 100), (100, 100), (10, 10), (10, 10)], None, None),
        ([(16, 16), (101, 100)], 2, "VISIONFN_FACE_VIDEO_MAX_PIXELS"),
        ([(16, 16), (*EIGHT_K,)], 2, "VISIONFN_FACE_VIDEO_MAX_PIXELS"),
        ([(10, 10)] * 5, 5, "VISIONFN_FACE_VIDEO_MAX_FRAMES"),
        ([(100, 100), (100, 100), (80, 80)], 3, "VISIONFN_FACE_VIDEO_MAX_DECODED_PIXELS"),
    ],
)
def test_frame_budget_refuses_the_first_frame_over_a_limit_naming_it(frames, refused_at, limit):
    budget = FrameBudget(SMALL)
    for index, (width, height) in enumerate(frames, start=1):
        if index == refused_at:
            with pytest.raises(PayloadTooLarge) as refused:
                budget.take(width, height)
            assert limit in refused.value.detail and f"frame {index}" in refused.value.detail
            return
        budget.take(width, height)
    assert refused_at is None and budget.frames == len(frames)


def test_a_video_that_switches_to_8k_after_its_first_frame_passes_the_probe_and_stops_the_worker_at_frame_2():
    """GIVEN a WebM whose header and first frame are 16x16 and whose 20 keyframes after it are 8K
    WHEN it is probed, then anonymized with the default limits
    THEN the probe sees 16x16 (only the first frame is decoded there), and the worker stops at
    frame 2, naming the limit, without decoding the other 19 8K frames."""
    video = switching_size_webm()
    assert len(video) < 2_000_000
    info = probe_video(video, DEFAULT_LIMITS)
    assert (info.width, info.height, info.frames) == (16, 16, 21)
    seen = []
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge) as refused:
        anonymize_video(video, lambda rgb: (seen.append(rgb.shape) or rgb, 0, 0), keep_audio=False, limits=DEFAULT_LIMITS)
    assert time.monotonic() - started < 3
    assert "Frame 2 is 7680x4320" in refused.value.detail and "VISIONFN_FACE_VIDEO_MAX_PIXELS" in refused.value.detail
    assert seen == [(16, 16, 3)]  # the 8K frame never reached the frame work


def test_the_worker_stops_at_the_frame_past_max_frames_when_the_probe_was_passed():
    video = stamped_mp4(frames=300, fps=25)
    assert probe_video(video, DEFAULT_LIMITS).frames == 300
    limits = VideoLimits(10**9, 60, 1920 * 1080, max_frames=50)
    done = []
    with pytest.raises(PayloadTooLarge) as refused:
        anonymize_video(video, lambda rgb: (rgb, 0, 0), keep_audio=False, limits=limits, progress=done.append)
    assert "Frame 51 is past the 50 frames" in refused.value.detail and done[-1] == 50


def test_a_video_stamped_at_60000_fps_is_refused_by_the_probe_quickly():
    """3000 frames stamped 1/60000 s apart last 0.05 s: within the seconds, not the frame rate."""
    video = stamped_mp4(frames=3000, fps=60000)
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge) as refused:
        probe_video(video, DEFAULT_LIMITS)
    assert time.monotonic() - started < 1
    assert "VISIONFN_FACE_VIDEO_MAX_FPS" in refused.value.detail and "3000 frames" in refused.value.detail


@pytest.mark.parametrize(
    ("limits", "limit"),
    [
        (VideoLimits(10**9, 60, 10**6, max_frames=299), "VISIONFN_FACE_VIDEO_MAX_FRAMES"),  # declared by the mp4 header
        (VideoLimits(10**9, 60, 10**6, max_decoded_pixels=300 * 64 * 64 - 1), "VISIONFN_FACE_VIDEO_MAX_DECODED_PIXELS"),
        (VideoLimits(10**9, 60, 10**6, max_fps=20), "VISIONFN_FACE_VIDEO_MAX_FPS"),
    ],
)
def test_the_probe_refuses_declared_frames_work_and_rate_over_the_limits(limits, limit):
    with pytest.raises(PayloadTooLarge) as refused:
        probe_video(stamped_mp4(frames=300, fps=25), limits)
    assert limit in refused.value.detail


def test_the_probe_counts_the_frames_a_webm_does_not_declare_and_stops_past_the_limit():
    video = switching_size_webm(later_frames=6, later=(16, 16))
    assert probe_video(video, VideoLimits(10**9, 60, 10**6, max_frames=7)).frames == 7
    with pytest.raises(PayloadTooLarge, match="more than 6 frames"):
        probe_video(video, VideoLimits(10**9, 60, 10**6, max_frames=6))


@pytest.mark.parametrize("fps", [60, 30])
def test_a_60_fps_webm_with_millisecond_timestamps_is_within_the_default_rate(fps):
    frames = [np.zeros((32, 32, 3), np.uint8)] * 3
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    assert probe_video(buffer.getvalue(), DEFAULT_LIMITS).frames == 3


def test_output_is_h264_with_every_frame_audio_as_asked_and_no_source_metadata():
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        container.metadata["title"] = "secret location"
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 161, 121, "yuv444p"  # odd sides
        for frame in _frames(6, (161, 121)):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    seen = []
    result = anonymize_video(
        buffer.getvalue(), lambda rgb: (seen.append(rgb.shape) or rgb, 1, 2), keep_audio=True, progress=lambda done: seen.append(done)
    )
    assert (result.frames, result.width, result.height, result.audio) == (6, 160, 120, False)
    assert result.detected == [1] * 6 and result.covered == [2] * 6
    assert seen.count((120, 160, 3)) == 6 and [s for s in seen if isinstance(s, int)] == [1, 2, 3, 4, 5, 6]
    with av.open(io.BytesIO(result.data)) as output:
        assert output.streams.video[0].codec_context.name == "h264"
        assert output.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert "title" not in output.metadata
        assert sum(1 for _ in output.decode(video=0)) == 6


def test_audio_is_kept_or_dropped(clip):
    kept = anonymize_video(clip, lambda rgb: (rgb, 0, 0), keep_audio=True)
    dropped = anonymize_video(clip, lambda rgb: (rgb, 0, 0), keep_audio=False)
    assert kept.audio and not dropped.audio
    with av.open(io.BytesIO(kept.data)) as output:
        assert output.streams.audio[0].codec_context.name == "aac"
    with av.open(io.BytesIO(dropped.data)) as output:
        assert not output.streams.audio
