"""The matching domain's table: owners' stored tool defaults, on the platform's declarative base."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.db.models import Base, JsonColumn, utc_now


class ToolSettings(Base):
    """One owner's stored defaults of one matching tool (``PUT /api/v1/settings/{tool}``)."""

    __tablename__ = "tool_settings"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    tool: Mapped[str] = mapped_column(String(32), primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(JsonColumn)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
