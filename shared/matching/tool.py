"""What every matching tool provides to the task machinery: its parameters, inputs and work."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from shared.matching.pictures import load_bgr
from shared.matching.ply import parse_header
from shared.matching.settings import MatchingSettings


class ToolParams(BaseModel):
    """Base of the per-tool parameter models: unknown names are errors (a typo is not ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ToolInput:
    field: str  # multipart field name
    kind: Literal["image", "point_cloud"]


@dataclass(frozen=True)
class ToolOutput:
    result_data: dict[str, Any]
    pictures: dict[str, np.ndarray] = field(default_factory=dict)  # result file name (.png) -> BGR image


class MatchTool(ABC):
    """One matching tool: cheap input checks at submission, the work itself in the worker."""

    name: ClassVar[str]
    params_model: ClassVar[type[ToolParams]]
    inputs: ClassVar[tuple[ToolInput, ...]]
    found_when: ClassVar[str]  # the result_data count that, above 0, means "found" (chain matching)

    def __init__(self, settings: MatchingSettings) -> None:
        self.settings = settings

    @classmethod
    def found(cls, result_data: dict[str, Any] | None) -> bool:
        """Whether a result found a match: what ends a chain."""
        return result_data is not None and (result_data.get(cls.found_when) or 0) > 0

    def check_input(self, spec: ToolInput, data: bytes) -> Any:
        """Reject an unreadable input with a 4xx before queueing; what was read (an image array,
        a PLY header) goes on to ``check``."""
        if spec.kind == "image":
            return load_bgr(data, self.settings.max_image_pixels)
        return parse_header(data, self.settings.surface_max_points)

    def check(self, checked: list[Any], params: Any) -> None:
        """Reject inputs that cannot go together (4xx), before queueing. Nothing by default."""
        return

    @abstractmethod
    def run(self, inputs: list[bytes], params: Any) -> ToolOutput:
        """Do the matching; a VisionFnError with a 4xx status means the input is at fault."""
