"""Hostile videos made with PyAV for the tests: headers that say less than the frames hold."""

from __future__ import annotations

import io
from fractions import Fraction
from functools import lru_cache

import av
import numpy as np

EIGHT_K = (7680, 4320)


def _vp8_keyframe(width: int, height: int) -> bytes:
    """One black VP8 keyframe of ``width`` x ``height``, encoded on its own."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, 25), Fraction(25)
    encoder.options = {"deadline": "realtime", "cpu-used": "16"}
    black = np.zeros((height * 3 // 2, width), np.uint8)
    black[height:] = 128  # neutral chroma
    frame = av.VideoFrame.from_ndarray(black, format="yuv420p")
    frame.pts = 0
    (packet,) = [*encoder.encode(frame), *encoder.encode(None)]
    return bytes(packet)


@lru_cache(maxsize=4)
def switching_size_webm(later_frames: int = 20, first: tuple[int, int] = (16, 16), later: tuple[int, int] = EIGHT_K) -> bytes:
    """A WebM (VP8, 25 fps) whose header and first frame are ``first`` (16x16) and whose
    ``later_frames`` keyframes after it are ``later`` (8K): VP8 changes size at a keyframe,
    the container says nothing of it."""
    packets = [_vp8_keyframe(*first)] + [_vp8_keyframe(*later)] * later_frames
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=25)
        stream.width, stream.height, stream.pix_fmt = first[0], first[1], "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for index, data in enumerate(packets):
            packet = av.Packet(data)
            packet.stream, packet.time_base, packet.is_keyframe = stream, Fraction(1, 1000), True
            packet.pts = packet.dts = index * 40
            container.mux(packet)
    return buffer.getvalue()


@lru_cache(maxsize=4)
def stamped_mp4(frames: int = 3000, fps: int = 60000, side: int = 64) -> bytes:
    """An H.264 mp4 of ``frames`` black ``side`` x ``side`` frames stamped at ``fps`` (3000 at
    60000 fps last 0.05 s)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(np.zeros((side, side, 3), np.uint8), format="rgb24")
        for index in range(frames):
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()
