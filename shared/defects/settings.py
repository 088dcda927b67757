"""The defect functions' settings: the platform's and their own (model, batches, inbox, analysis)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr

from shared.platform.settings import Settings


class DefectSettings(Settings):
    """What the defect functions read (defect_detect, defect_data)."""

    defect_model_path: Path | None = Field(
        None,
        description="An operator's own ONNX defect model (contract in shared/defects/model/MODEL_CARD.md); "
        "unset: the shipped NEU-DET model.",
    )

    defect_max_batch_images: int = Field(
        32, ge=1, le=1000, description="POST /api/detect takes at most this many `images` per request (more: 413)."
    )
    defect_max_batch_pixels: int = Field(
        100_000_000,
        ge=1,
        description="The images of one POST /api/detect may hold at most this many pixels in all "
        "(read from their headers before any is decoded; more: 413). Each image is also held to `max_image_pixels`.",
    )
    defect_inbox_owner: str = Field(
        "local",
        min_length=1,
        max_length=64,
        description="Owner of the records of objects put straight under `inbox/defects/` (those under "
        "`inbox/defects/<owner>/` belong to `<owner>`).",
    )
    analysis_llm_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible API (`.../v1`) that writes the analysis narrative; "
        "unset: the analysis is the computed summary only.",
    )
    analysis_llm_key: SecretStr | None = Field(
        None, description="Bearer key of that API (never logged or returned; unset for servers without keys)."
    )
    analysis_llm_model: str | None = Field(None, description="Model name sent to that API (needed with the URL).")
    analysis_llm_timeout: float = Field(
        10, gt=0, le=120, description="Seconds the analysis waits for the narrative before answering without it."
    )


@lru_cache(maxsize=1)
def get_defect_settings() -> DefectSettings:
    """The process-wide settings of this domain (read once)."""
    return DefectSettings()
