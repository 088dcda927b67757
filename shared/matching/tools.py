"""The matching tools by name, and the work one task does (run in a work process)."""

from __future__ import annotations

import time
from typing import Any, Literal

from shared.matching.feature import FeatureTool
from shared.matching.pictures import encode_pictures
from shared.matching.settings import get_matching_settings
from shared.matching.surface import SurfaceTool
from shared.matching.template import TemplateTool
from shared.matching.tool import MatchTool
from shared.platform.errors import NotFound

TOOLS: dict[str, type[MatchTool]] = {tool.name: tool for tool in (TemplateTool, FeatureTool, SurfaceTool)}
#: Their names as a type (a chain step's ``tool``); a unit test holds it to ``TOOLS``.
ToolName = Literal["template", "feature", "surface"]


def tool_class(name: str) -> type[MatchTool]:
    if name not in TOOLS:
        raise NotFound(f"Unknown tool '{name}'; tools: {', '.join(TOOLS)}")
    return TOOLS[name]


def run_tool(name: str, inputs: list[bytes], params: dict[str, Any], extra_seconds: float = 0.0) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One task's CPU work: match, draw and PNG-encode; ``(result_data, {file name: bytes})``.
    ``params``: the task's stored parameters, the ``model_dump()`` of the tool's model made where
    they arrived (a submission, a chain's steps), read back here as that model: they cross the
    work process's pipe as JSON-able data. ``extra_seconds`` lengthens the work on purpose (fault
    injection: a long task)."""
    time.sleep(extra_seconds)
    tool = tool_class(name)(get_matching_settings())
    output = tool.run(inputs, tool.params_model.model_validate(params))
    return output.result_data, encode_pictures(output.pictures)
