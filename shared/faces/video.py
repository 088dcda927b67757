"""Face anonymization of videos: probe (limits, before any task exists), and every frame
detected, tracked and anonymized into a browser-playable H.264 mp4.

The frame work (``FrameAnonymizer``) is pure numpy; reading and writing containers goes
through PyAV (its wheel carries ffmpeg) in ``probe_video`` and ``anonymize_video``. A header
can lie (a first frame of 16x16 and 8K keyframes after it; 3000 frames stamped 1/60000 s
apart): the probe refuses what the header and the packets show, and the worker counts what
the decoder really gives (``FrameBudget``), stopping at the first frame over a limit.
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from shared.faces.anonymize import AnonymizeStyle, anonymize
from shared.faces.detections import FaceDetections
from shared.faces.detectors import FaceDetector
from shared.faces.hide import HideTarget
from shared.faces.text import TextRegions, TextStage, hide_text
from shared.faces.tracking import FaceTracker
from shared.platform.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

#: Container formats accepted (ffmpeg's demuxer names: mp4 and mov share one, webm is matroska's).
ACCEPTED_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4/mov", "matroska,webm": "webm"}
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm")
OUTPUT_CONTENT_TYPE = "video/mp4"
#: How far a frame rate measured from timestamps may pass ``max_fps`` (their jitter: variable-rate
#: phone videos, webm's millisecond timestamps).
FPS_SLACK = 0.02


class NotAVideo(BadRequest):
    pass


@dataclass(frozen=True)
class VideoLimits:
    """What one video may hold. The probe refuses (413) what its header and packets declare over
    them; the worker checks every decoded frame (``FrameBudget``)."""

    max_bytes: int
    max_seconds: float
    max_pixels: int  # per frame
    max_fps: float = 60.0  # frames per second of its timestamps
    max_frames: int = 0  # 0: max_seconds x max_fps
    max_decoded_pixels: int = 0  # all its frames together; 0: max_frames x max_pixels

    def __post_init__(self) -> None:
        if not self.max_frames:
            object.__setattr__(self, "max_frames", math.ceil(self.max_seconds * self.max_fps))
        if not self.max_decoded_pixels:
            object.__setattr__(self, "max_decoded_pixels", self.max_frames * self.max_pixels)


#: The limits of the settings' defaults (shared/faces/settings.py), for callers that name none.
DEFAULT_LIMITS = VideoLimits(max_bytes=64 * 1024 * 1024, max_seconds=120.0, max_pixels=1920 * 1080, max_fps=60.0)


@dataclass(frozen=True)
class VideoInfo:
    container: str
    codec: str
    width: int
    height: int
    frames: int  # counted by demuxing: every packet of the video stream is there
    seconds: float
    fps: float
    has_audio: bool


@dataclass
class _Packets:
    """The video stream's packets, read (not decoded): how many, their timestamps' span."""

    frames: int = 0
    first_pts: int | None = None
    last_pts: int | None = None


def probe_video(data: bytes, limits: VideoLimits) -> VideoInfo:
    """Everything checked before a task is made, the cheapest first: size, container, a video
    stream, what its header declares (frame size, duration, frames), then every packet read (a
    truncated file is refused; how many; the rate of their timestamps) and the first frame
    decoded. Later frames are not decoded here: the worker checks each one (``FrameBudget``)."""
    import av

    container = _opened(data, limits)
    with container:
        stream = _video_stream(container)
        width, height = stream.codec_context.width, stream.codec_context.height
        declared = _checked_header(container, stream, limits)
        try:
            packets = _read_packets(container, stream, limits)
            container.seek(0)
            first = next(container.decode(stream), None)
        except (av.FFmpegError, ValueError, OSError) as error:
            raise NotAVideo(f"The video is corrupt or truncated: {error}") from error
        if packets.frames == 0 or first is None:
            raise NotAVideo("The video has no decodable frame")
        if stream.frames and packets.frames < stream.frames:
            raise NotAVideo(f"The video is truncated: {packets.frames} of its {stream.frames} frames are there")
        if first.width * first.height > limits.max_pixels:
            raise PayloadTooLarge(f"The first frame is {first.width}x{first.height} pixels; at most {limits.max_pixels} pixels per frame")
        _check_decoded_pixels(packets.frames, max(width * height, first.width * first.height), limits)
        seconds = max(declared, _seconds(packets.last_pts, stream.time_base) or 0.0)
        _check_timing(packets, seconds, stream.time_base, limits)
        fps = float(stream.average_rate) if stream.average_rate else (packets.frames / seconds if seconds else 25.0)
        return VideoInfo(
            container=ACCEPTED_FORMATS[container.format.name],
            codec=stream.codec_context.name,
            width=width,
            height=height,
            frames=packets.frames,
            seconds=round(seconds, 3),
            fps=round(fps, 3),
            has_audio=bool(container.streams.audio),
        )


def _opened(data: bytes, limits: VideoLimits) -> Any:  # PyAV's InputContainer
    import av

    if not data:
        raise NotAVideo("The video is empty")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"The video has {len(data)} bytes; at most {limits.max_bytes} are accepted")
    try:
        return av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as error:
        raise NotAVideo(f"Not a readable video (mp4, mov or webm): {error}") from error


def _video_stream(container: Any) -> Any:  # PyAV's container and stream
    if container.format.name not in ACCEPTED_FORMATS:
        raise UnsupportedMediaType(f"Video container {container.format.name!r} is not accepted; send mp4, mov or webm")
    if not container.streams.video:
        raise NotAVideo("The file has no video stream")
    return container.streams.video[0]


def _checked_header(container: Any, stream: Any, limits: VideoLimits) -> float:
    """What the header declares, nothing read yet: frame size, duration, frames (and the work
    of them all). The declared seconds."""
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > limits.max_pixels:
        raise PayloadTooLarge(f"Frames of {width}x{height} pixels; at most {limits.max_pixels} pixels per frame")
    declared = _seconds(stream.duration, stream.time_base) or (container.duration or 0) / 1_000_000
    if declared > limits.max_seconds:
        raise PayloadTooLarge(f"The video lasts {declared:.1f} s; at most {limits.max_seconds:g} s are accepted")
    if stream.frames > limits.max_frames:
        raise PayloadTooLarge(
            f"The video declares {stream.frames} frames; at most {limits.max_frames} are accepted (VISIONFN_FACE_VIDEO_MAX_FRAMES)"
        )
    _check_decoded_pixels(stream.frames, width * height, limits)
    return declared


def _read_packets(container: Any, stream: Any, limits: VideoLimits) -> _Packets:
    """Every packet of the video stream read, not decoded; refused at the first corrupt one, and
    at the one past ``max_frames``."""
    packets = _Packets()
    for packet in container.demux(stream):
        if packet.is_corrupt:
            raise NotAVideo(f"The video is truncated or corrupt: frame {packets.frames + 1} is incomplete")
        if not packet.size:
            continue
        packets.frames += 1
        if packets.frames > limits.max_frames:
            raise PayloadTooLarge(
                f"The video holds more than {limits.max_frames} frames, the most accepted (VISIONFN_FACE_VIDEO_MAX_FRAMES)"
            )
        if packet.pts is not None:
            packets.first_pts = packet.pts if packets.first_pts is None else min(packets.first_pts, packet.pts)
            packets.last_pts = packet.pts if packets.last_pts is None else max(packets.last_pts, packet.pts)
    return packets


def _check_decoded_pixels(frames: int, frame_pixels: int, limits: VideoLimits) -> None:
    """The work of decoding ``frames`` frames of ``frame_pixels`` each, within ``max_decoded_pixels``."""
    if frames * frame_pixels > limits.max_decoded_pixels:
        raise PayloadTooLarge(
            f"The video's {frames} frames of {frame_pixels} pixels hold {frames * frame_pixels} pixels in "
            f"all; at most {limits.max_decoded_pixels} are decoded (VISIONFN_FACE_VIDEO_MAX_DECODED_PIXELS)"
        )


def _check_timing(packets: _Packets, seconds: float, time_base: Fraction | None, limits: VideoLimits) -> None:
    """The duration, and the frame rate of the timestamps (one tick of slack: a 3000-frame video
    stamped 1/60000 s apart lasts 0.05 s, and is 60000 frames per second)."""
    if seconds > limits.max_seconds:
        raise PayloadTooLarge(f"The video lasts {seconds:.1f} s; at most {limits.max_seconds:g} s are accepted")
    if packets.frames < 2 or packets.first_pts is None or packets.last_pts is None or time_base is None:
        return
    span = float((packets.last_pts - packets.first_pts + 1) * time_base)
    rate = (packets.frames - 1) / span
    if rate > limits.max_fps * (1 + FPS_SLACK):
        raise PayloadTooLarge(
            f"The video's {packets.frames} frames are stamped over {span:.3g} s: {rate:.0f} frames per "
            f"second; at most {limits.max_fps:g} are accepted (VISIONFN_FACE_VIDEO_MAX_FPS)"
        )


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return float(value * time_base) if value is not None and time_base is not None else None


@dataclass
class FrameBudget:
    """What the decoder gave so far, checked frame by frame as the worker decodes: each frame's
    size (a header may declare 16x16 and carry 8K keyframes after it), how many frames, all
    their pixels. The first frame over a limit stops the work there (413: the task ends in
    ``error`` with the reason); nothing after it is decoded."""

    limits: VideoLimits
    frames: int = 0
    pixels: int = 0

    def take(self, width: int, height: int) -> None:
        self.frames += 1
        self.pixels += width * height
        limits, frame = self.limits, self.frames
        if width * height > limits.max_pixels:
            raise PayloadTooLarge(
                f"Frame {frame} is {width}x{height} = {width * height} pixels; at most {limits.max_pixels} "
                f"pixels per frame (VISIONFN_FACE_VIDEO_MAX_PIXELS): stopped at frame {frame}"
            )
        if frame > limits.max_frames:
            raise PayloadTooLarge(
                f"Frame {frame} is past the {limits.max_frames} frames a video may hold "
                f"(VISIONFN_FACE_VIDEO_MAX_FRAMES): stopped at frame {frame}"
            )
        if self.pixels > limits.max_decoded_pixels:
            raise PayloadTooLarge(
                f"Frame {frame} brings the decoded pixels to {self.pixels}; at most {limits.max_decoded_pixels} "
                f"in all (VISIONFN_FACE_VIDEO_MAX_DECODED_PIXELS): stopped at frame {frame}"
            )


@dataclass
class FrameAnonymizer:
    """One video's frames, in order: detect, track (a face missed for up to ``track_frames``
    frames stays covered), anonymize. Pure: arrays in, arrays out. With ``text_stage`` and
    ``hide`` naming ``text`` or ``numbers``, text regions are found, tracked (as faces are, on
    their boxes) and hidden too; their counts per frame go to ``text_detected`` and ``text_covered``."""

    detector: FaceDetector
    style: AnonymizeStyle
    track_frames: int = 5
    min_confidence: float | None = None
    text_stage: TextStage | None = None
    hide: frozenset[HideTarget] = frozenset({"faces"})
    tracker: FaceTracker = field(init=False)
    text_tracker: FaceTracker = field(init=False)
    text_detected: list[int] = field(init=False, default_factory=list)
    text_covered: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.tracker = FaceTracker(max_missed=self.track_frames)
        self.text_tracker = FaceTracker(max_missed=self.track_frames)

    @property
    def hides_text(self) -> bool:
        return self.text_stage is not None and bool(self.hide & {"text", "numbers"})

    def text(self, rgb: np.ndarray) -> TextRegions:
        """The text regions to hide in this frame: the detected quadrilaterals, and the boxes of
        the tracks that lost theirs (for up to ``track_frames`` frames)."""
        assert self.text_stage is not None
        found = self.text_stage.find(rgb, self.hide)
        tracked = self.text_tracker.update(found.detections, rgb.shape[1], rgb.shape[0])
        self.text_detected.append(len(found))
        self.text_covered.append(len(tracked))
        if len(tracked) <= len(found):
            return found
        coasting = FaceDetections(tracked.boxes[len(found) :], tracked.scores[len(found) :])
        lost = TextRegions.from_boxes(coasting, np.ones(len(coasting), bool))
        return TextRegions(
            np.concatenate([found.quads, lost.quads]),
            np.concatenate([found.scores, lost.scores]),
            np.concatenate([found.numbers, lost.numbers]),
        )

    def faces(self, rgb: np.ndarray) -> tuple[FaceDetections, int]:
        """What to cover in this frame, and how many of those the detector found in it."""
        detections = self.detector.detect(rgb) if "faces" in self.hide else FaceDetections.empty()
        if self.min_confidence is not None:
            detections = detections.above(self.min_confidence)
        covered = self.tracker.update(detections, rgb.shape[1], rgb.shape[0])
        return covered, len(detections)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, int, int]:
        """The anonymized frame, faces detected, faces covered (detected + tracked)."""
        covered, detected = self.faces(rgb)
        if self.hides_text:
            regions = self.text(rgb)
            if len(regions):
                rgb = rgb.copy()
                hide_text(rgb, regions, self.style)
        output, _ = anonymize(rgb, covered, self.style)
        return output, detected, len(covered)


@dataclass(frozen=True)
class VideoResult:
    data: bytes
    frames: int
    detected: list[int]  # per frame
    covered: list[int]  # per frame (with the tracked faces)
    width: int
    height: int
    fps: float
    audio: bool


def anonymize_video(
    data: bytes,
    frame_work: Callable[[np.ndarray], tuple[np.ndarray, int, int]],
    keep_audio: bool,
    limits: VideoLimits | None = None,
    progress: Callable[[int], None] | None = None,
    crf: int = 23,
) -> VideoResult:
    """Every frame through ``frame_work``, encoded as H.264 (yuv420p, even sides) in an mp4 with
    its index first (plays while it downloads); audio re-encoded to AAC when kept; no metadata
    of the source is copied. ``progress(frames_done)`` is called after each frame. Each decoded
    frame is checked against ``limits`` (by default ``DEFAULT_LIMITS``) before anything is done
    with it (``FrameBudget``)."""
    import av

    source = av.open(io.BytesIO(data), mode="r")
    scratch = tempfile.TemporaryDirectory(prefix="face-video-")  # +faststart rewrites the file: not a buffer
    output = Path(scratch.name) / "anonymized.mp4"
    detected: list[int] = []
    covered: list[int] = []
    budget = FrameBudget(limits or DEFAULT_LIMITS)
    with scratch:
        with source, av.open(str(output), mode="w", format="mp4", options={"movflags": "+faststart"}) as target:
            video_in = source.streams.video[0]
            video_in.thread_type = "AUTO"
            width, height = video_in.codec_context.width // 2 * 2, video_in.codec_context.height // 2 * 2
            rate = video_in.average_rate or Fraction(25)
            video_out = target.add_stream("libx264", rate=rate)
            video_out.width, video_out.height, video_out.pix_fmt = width, height, "yuv420p"
            video_out.options = {"crf": str(crf), "preset": "veryfast"}
            video_out.codec_context.time_base = video_in.time_base or Fraction(1, 90000)
            audio_in = source.streams.audio[0] if keep_audio and source.streams.audio else None
            audio_out = None
            if audio_in is not None:
                audio_out = target.add_stream("aac", rate=audio_in.codec_context.sample_rate or 48000)
                context = audio_out.codec_context
                resampler = av.AudioResampler(format="fltp", layout=context.layout.name, rate=context.sample_rate)
            streams = [video_in] + ([audio_in] if audio_in is not None else [])
            try:
                for frame in _decoded(source, streams):
                    if isinstance(frame, av.VideoFrame):
                        budget.take(frame.width, frame.height)
                        rgb = frame.to_ndarray(format="rgb24")[:height, :width]
                        anonymized, found, kept = frame_work(np.ascontiguousarray(rgb))
                        detected.append(found)
                        covered.append(kept)
                        out_frame = av.VideoFrame.from_ndarray(anonymized, format="rgb24")
                        out_frame.pts, out_frame.time_base = frame.pts, frame.time_base
                        target.mux(video_out.encode(out_frame))
                        if progress:
                            progress(len(detected))
                    elif audio_out is not None:
                        frame.pts = None
                        for resampled in resampler.resample(frame):
                            target.mux(audio_out.encode(resampled))
            except av.FFmpegError as error:
                raise NotAVideo(f"The video is corrupt or truncated: {error}") from error
            target.mux(video_out.encode(None))
            if audio_out is not None:
                target.mux(audio_out.encode(None))
            fps = float(rate)
        encoded = output.read_bytes()
    return VideoResult(encoded, len(detected), detected, covered, width, height, round(fps, 3), audio_out is not None)


def _decoded(source, streams) -> Iterator:  # noqa: ANN001 (PyAV objects)
    for packet in source.demux(*streams):
        yield from packet.decode()
