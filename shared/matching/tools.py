"""The matching tools by name."""

from __future__ import annotations

from shared.errors import NotFound
from shared.matching.feature import FeatureTool
from shared.matching.surface import SurfaceTool
from shared.matching.template import TemplateTool
from shared.matching.tool import MatchTool

TOOLS: dict[str, type[MatchTool]] = {tool.name: tool for tool in (TemplateTool, FeatureTool, SurfaceTool)}


def tool_class(name: str) -> type[MatchTool]:
    if name not in TOOLS:
        raise NotFound(f"Unknown tool '{name}'; tools: {', '.join(TOOLS)}")
    return TOOLS[name]
