"""The face-privacy functions' settings: the platform's and their own (environment variables ``VISIONFN_FACE_*``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator

from shared.faces.detector_names import Detector, Profile
from shared.faces.hide import parse_hide
from shared.platform.settings import PROJECT_ROOT, Settings


class FaceSettings(Settings):
    """What the face functions read (face_process, face_detect, face_video, health)."""

    model_dir: Path = Field(PROJECT_ROOT / ".models", description="Cached model files (fetched by `make install`).")
    face_detector: Detector = Field("fused", description="Detector used when a request names none.")
    face_profile: Profile = Field(
        "default",
        description="Profile of the fused detector when a request names none: default, or thorough (a flipped "
        "second pass and lower confirmation thresholds: more faces found, more false positives, about twice CenterFace's time).",
    )
    face_max_input_side: int = Field(
        1024,
        ge=64,
        le=8192,
        description="Longer side (px) an image is scaled down to before the face networks (CenterFace, "
        "RetinaFace) see it: larger finds smaller faces in big images, and costs time with its square.",
    )
    face_output_quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality of anonymized images.")
    text_max_input_side: int = Field(
        1152,
        ge=64,
        le=8192,
        description="Longer side (px) an image is scaled down to before the text detector (hide=text, numbers) "
        "sees it: larger finds smaller text in big images, and costs time with its square.",
    )
    face_inbox_hide: str = Field(
        "faces",
        description="What the inbox/faces/ trigger hides in photos and videos: a comma list of faces, text, numbers "
        "(as the hide option of POST /process).",
    )
    face_video_max_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="Videos (POST /api/v1/faces/video, inbox/faces/) above this size get 413."
    )
    face_video_max_seconds: float = Field(120.0, gt=0, description="Videos lasting longer than this get 413.")
    face_video_max_pixels: int = Field(
        1920 * 1080,
        gt=0,
        description="Videos whose frames have more pixels than this get 413; a frame over it, "
        "decoded by the worker, ends the task in error.",
    )
    face_video_max_fps: float = Field(
        60.0,
        gt=0,
        description="Videos whose timestamps stamp more frames per second than this (2 % of slack) get "
        "413; it also sets the default of face_video_max_frames.",
    )
    face_video_max_frames: int | None = Field(
        None,
        gt=0,
        description="Frames a video may hold (default: max seconds x max fps, 7200): more declared or "
        "counted gets 413; the worker stops at the frame past it (the task ends in error).",
    )
    face_video_max_decoded_pixels: int | None = Field(
        None,
        gt=0,
        description="Pixels of all the frames of a video together, the decoding work (default: max "
        "frames x max pixels, 14,929,920,000): more declared gets 413; the worker stops at the frame past it.",
    )
    face_video_track_frames: int = Field(
        5, ge=0, le=100, description="Frames a face stays covered (moving with its track) after the detector lost it."
    )
    face_video_queue_url: str | None = Field(
        None, description="SQS job queue of the face_video function (set by template.yaml; the face inbox sends videos there)."
    )
    face_video_inbox_owner: str = Field("inbox", description="Owner of the video tasks that inbox/faces/ uploads create.")

    @field_validator("face_inbox_hide")
    @classmethod
    def _known_targets(cls, value: str) -> str:
        return ",".join(sorted(parse_hide(value)))

    @property
    def inbox_hide_option(self) -> str | None:
        """The ``hide`` option of the inbox's photos and videos: None for faces alone (their
        answers then as without the option)."""
        return None if self.face_inbox_hide == "faces" else self.face_inbox_hide


@lru_cache(maxsize=1)
def get_face_settings() -> FaceSettings:
    """The process-wide settings of this domain (read once)."""
    return FaceSettings()
