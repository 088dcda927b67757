"""Face anonymization of videos: probe (limits, before any task exists), and every frame
detected, tracked and anonymized into a browser-playable H.264 mp4.

The frame work (``FrameAnonymizer``) is pure numpy; reading and writing containers goes
through PyAV (its wheel carries ffmpeg) in ``probe_video`` and ``anonymize_video``.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from shared.faces.anonymize import AnonymizeStyle, anonymize
from shared.faces.detections import FaceDetections
from shared.faces.detectors import FaceDetector
from shared.faces.tracking import FaceTracker
from shared.platform.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

#: Container formats accepted (ffmpeg's demuxer names: mp4 and mov share one, webm is matroska's).
ACCEPTED_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4/mov", "matroska,webm": "webm"}
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm")
OUTPUT_CONTENT_TYPE = "video/mp4"


class NotAVideo(BadRequest):
    pass


@dataclass(frozen=True)
class VideoLimits:
    max_bytes: int
    max_seconds: float
    max_pixels: int  # per frame


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


def probe_video(data: bytes, limits: VideoLimits) -> VideoInfo:
    """Everything checked before a task is made: size, container, a decodable video stream,
    frame size, duration, and every packet present (a truncated file is refused)."""
    import av

    if not data:
        raise NotAVideo("The video is empty")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"The video has {len(data)} bytes; at most {limits.max_bytes} are accepted")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as error:
        raise NotAVideo(f"Not a readable video (mp4, mov or webm): {error}") from error
    with container:
        if container.format.name not in ACCEPTED_FORMATS:
            raise UnsupportedMediaType(f"Video container {container.format.name!r} is not accepted; send mp4, mov or webm")
        if not container.streams.video:
            raise NotAVideo("The file has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > limits.max_pixels:
            raise PayloadTooLarge(f"Frames of {width}x{height} pixels; at most {limits.max_pixels} pixels per frame")
        declared = _seconds(stream.duration, stream.time_base) or (container.duration or 0) / 1_000_000
        if declared > limits.max_seconds:
            raise PayloadTooLarge(f"The video lasts {declared:.1f} s; at most {limits.max_seconds:g} s are accepted")
        frames, last_pts = 0, None
        try:
            for packet in container.demux(stream):
                if packet.is_corrupt:
                    raise NotAVideo(f"The video is truncated or corrupt: frame {frames + 1} is incomplete")
                if packet.size:
                    frames += 1
                    if packet.pts is not None:
                        last_pts = packet.pts if last_pts is None else max(last_pts, packet.pts)
            container.seek(0)
            first = next(container.decode(stream), None)
        except (av.FFmpegError, ValueError, OSError) as error:
            raise NotAVideo(f"The video is corrupt or truncated: {error}") from error
        if frames == 0 or first is None:
            raise NotAVideo("The video has no decodable frame")
        if stream.frames and frames < stream.frames:
            raise NotAVideo(f"The video is truncated: {frames} of its {stream.frames} frames are there")
        seconds = max(declared, _seconds(last_pts, stream.time_base) or 0.0)
        if seconds > limits.max_seconds:
            raise PayloadTooLarge(f"The video lasts {seconds:.1f} s; at most {limits.max_seconds:g} s are accepted")
        fps = float(stream.average_rate) if stream.average_rate else (frames / seconds if seconds else 25.0)
        return VideoInfo(
            container=ACCEPTED_FORMATS[container.format.name], codec=stream.codec_context.name, width=width,
            height=height, frames=frames, seconds=round(seconds, 3), fps=round(fps, 3), has_audio=bool(container.streams.audio),
        )


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return float(value * time_base) if value is not None and time_base is not None else None


@dataclass
class FrameAnonymizer:
    """One video's frames, in order: detect, track (a face missed for up to ``track_frames``
    frames stays covered), anonymize. Pure: arrays in, arrays out."""

    detector: FaceDetector
    style: AnonymizeStyle
    track_frames: int = 5
    min_confidence: float | None = None
    tracker: FaceTracker = field(init=False)

    def __post_init__(self) -> None:
        self.tracker = FaceTracker(max_missed=self.track_frames)

    def faces(self, rgb: np.ndarray) -> tuple[FaceDetections, int]:
        """What to cover in this frame, and how many of those the detector found in it."""
        detections = self.detector.detect(rgb)
        if self.min_confidence is not None:
            detections = detections.above(self.min_confidence)
        covered = self.tracker.update(detections, rgb.shape[1], rgb.shape[0])
        return covered, len(detections)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, int, int]:
        """The anonymized frame, faces detected, faces covered (detected + tracked)."""
        covered, detected = self.faces(rgb)
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
    progress: Callable[[int], None] | None = None,
    crf: int = 23,
) -> VideoResult:
    """Every frame through ``frame_work``, encoded as H.264 (yuv420p, even sides) in an mp4 with
    its index first (plays while it downloads); audio re-encoded to AAC when kept; no metadata
    of the source is copied. ``progress(frames_done)`` is called after each frame."""
    import av

    source = av.open(io.BytesIO(data), mode="r")
    scratch = tempfile.TemporaryDirectory(prefix="face-video-")  # +faststart rewrites the file: not a buffer
    output = Path(scratch.name) / "anonymized.mp4"
    detected: list[int] = []
    covered: list[int] = []
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
