"""The face domain's table (migration ``0004``), on the platform's declarative base."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.db.models import Base, utc_now


class FaceAnonymization(Base):
    """One row per object version anonymized by the inbox/faces/ upload trigger."""

    __tablename__ = "face_anonymizations"
    __table_args__ = (UniqueConstraint("object_key", "etag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_key: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str] = mapped_column(String(64))
    output_key: Mapped[str] = mapped_column(String(1024))
    sidecar_key: Mapped[str] = mapped_column(String(1024))
    faces_count: Mapped[int] = mapped_column(Integer)
    detector: Mapped[str] = mapped_column(String(64))
    processing_time_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
