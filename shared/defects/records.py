"""Inspection records: one row per inspected image, owned like tasks, and the data service's
queries over them (every one filtered by the caller's owner). Migration: 0008_defect_records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Date, DateTime, Float, Index, Integer, Select, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.defects.queries import DayStat, PageQuery, RecordOut, RecordPage, SearchQuery, fill_days
from shared.platform.db.engine import session_scope
from shared.platform.db.models import Base, utc_now
from shared.platform.pages import page_statements

#: Longest file name kept in a record (longer ones are cut; the detect answer keeps the whole name).
MAX_NAME_LENGTH = 255


class DefectRecord(Base):
    """One inspected image: its class, defect count and confidence, and its annotated picture."""

    __tablename__ = "defect_records"
    __table_args__ = (
        UniqueConstraint("source_key", "source_etag", name="uq_defect_records_source"),
        # getRecent, getPaginated, search (newest first, date range) and analysis; covering on Postgres
        Index(
            "ix_defect_records_owner_created",
            "owner",
            "created_at",
            "id",
            postgresql_include=["name", "result_key", "label", "num", "dice"],
        ),
        # statByDate: an index-only scan of one owner's days
        Index("ix_defect_records_owner_day", "owner", "created_day", "num"),
        # search by exact number of defects
        Index("ix_defect_records_owner_num", "owner", "num", "created_at", "id"),
        # and on Postgres with pg_trgm, ix_defect_records_name_trgm: GIN (lower(name) gin_trgm_ops) for lower(name) LIKE '%...%'
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    label: Mapped[str] = mapped_column(String(64))
    num: Mapped[int] = mapped_column(Integer)
    dice: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    created_day: Mapped[dt.date] = mapped_column(Date)  # created_at's UTC day
    result_key: Mapped[str] = mapped_column(String(1024))  # the annotated PNG in the bucket
    source_key: Mapped[str | None] = mapped_column(String(1024), nullable=True)  # inbox/defects/ object
    source_etag: Mapped[str | None] = mapped_column(String(64), nullable=True)
    defects: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{label, score, box}]
    processing_time_ms: Mapped[int] = mapped_column(Integer, default=0)


@dataclass(frozen=True)
class NewRecord:
    """What an inspection records."""

    name: str
    label: str
    num: int
    dice: float
    result_key: str
    defects: list[dict[str, Any]]
    processing_time_ms: int
    source_key: str | None = None
    source_etag: str | None = None


def record_out(row: Any) -> RecordOut:
    """A record's answer from a row of RECORD_COLUMNS (or a whole DefectRecord)."""
    created = as_utc(row.created_at)
    return RecordOut(
        figId=row.id,
        name=row.name,
        resFig=row.result_key,
        date=created.date().isoformat(),
        time=created.strftime("%H:%M:%S"),
        label=row.label,
        num=row.num,
        dice=round(row.dice, 4),
    )


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A stored time in UTC (SQLite gives it back without its zone; it was stored in UTC)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


class DefectRecords:
    """The ``defect_records`` table; callers get pydantic answers, never ORM rows."""

    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url

    @staticmethod
    def add(session: Session, owner: str, record: NewRecord, now: dt.datetime | None = None) -> DefectRecord:
        """Add one row in the caller's transaction (an upload handler's, fenced by its lease)."""
        now = as_utc(now or utc_now())
        row = DefectRecord(
            owner=owner,
            name=record.name[:MAX_NAME_LENGTH],
            label=record.label,
            num=record.num,
            dice=record.dice,
            created_at=now,
            created_day=now.date(),
            result_key=record.result_key,
            source_key=record.source_key,
            source_etag=record.source_etag,
            defects=record.defects,
            processing_time_ms=record.processing_time_ms,
        )
        session.add(row)
        return row

    def add_many(self, owner: str, records: Sequence[NewRecord]) -> list[int]:
        """Rows for a batch, in one transaction; their ids in order."""
        if not records:
            return []
        with session_scope(self.database_url) as session:
            rows = [self.add(session, owner, record) for record in records]
            session.flush()
            return [row.id for row in rows]

    def recent(self, owner: str, limit: int) -> list[RecordOut]:
        """The owner's newest ``limit`` records, newest first."""
        with session_scope(self.database_url) as session:
            return [record_out(row) for row in session.execute(recent_statement(owner, limit))]

    def search(self, owner: str, query: PageQuery) -> RecordPage:
        """The page ``query`` asks for, newest first, with the count of every match before paging
        (a page past the end is empty, its total still right)."""
        count, page = search_statements(owner, query)
        with session_scope(self.database_url) as session:
            total = session.scalar(count) or 0
            rows = session.execute(page).all() if query.offset < total else []
            return RecordPage(total=total, data=[record_out(row) for row in rows])

    def stat_by_date(self, owner: str, start: dt.date, end: dt.date) -> list[DayStat]:
        """Records and defects per UTC day from ``start`` to ``end``, every day listed."""
        with session_scope(self.database_url) as session:
            counted = session.execute(stat_statement(owner, start, end)).all()
        return fill_days(start, end, {_as_date(day): (int(records), int(defects)) for day, records, defects in counted})

    def by_source(self, source_key: str) -> list[RecordOut]:
        """The records made from one inbox object (every version of it)."""
        with session_scope(self.database_url) as session:
            rows = session.execute(select(*RECORD_COLUMNS).where(DefectRecord.source_key == source_key).order_by(DefectRecord.id))
            return [record_out(row) for row in rows]


# --- the statements (the benchmark prints their plans) ---------------------------------------------


#: What a record's answer needs (not its boxes): narrower rows to read and to send.
RECORD_COLUMNS = (
    DefectRecord.id,
    DefectRecord.name,
    DefectRecord.result_key,
    DefectRecord.created_at,
    DefectRecord.label,
    DefectRecord.num,
    DefectRecord.dice,
)


def recent_statement(owner: str, limit: int) -> Select:
    return (
        select(*RECORD_COLUMNS)
        .where(DefectRecord.owner == owner)
        .order_by(DefectRecord.created_at.desc(), DefectRecord.id.desc())
        .limit(limit)
    )


def search_statements(owner: str, query: PageQuery) -> tuple[Select[Any], Select[Any]]:
    """The count of every match, and the page asked for (newest first)."""
    conditions = [DefectRecord.owner == owner]
    if isinstance(query, SearchQuery):
        if query.name:
            # lower() LIKE: half the cost of ILIKE per row, and what the trigram index holds
            conditions.append(func.lower(DefectRecord.name).like(func.lower(f"%{_escape_like(query.name)}%"), escape="\\"))
        if query.num is not None:
            conditions.append(DefectRecord.num == query.num)
        if query.start_date:
            conditions.append(DefectRecord.created_at >= _day_start(query.start_date))
        if query.end_date:
            conditions.append(DefectRecord.created_at < _day_start(query.end_date + dt.timedelta(days=1)))
    return page_statements(
        DefectRecord, conditions, RECORD_COLUMNS, [DefectRecord.created_at.desc(), DefectRecord.id.desc()], query.offset, query.limit
    )


def stat_statement(owner: str, start: dt.date, end: dt.date) -> Select[dt.date, int, int]:
    return (
        select(DefectRecord.created_day, func.count(), func.coalesce(func.sum(DefectRecord.num), 0))
        .where(DefectRecord.owner == owner, DefectRecord.created_day >= start, DefectRecord.created_day <= end)
        .group_by(DefectRecord.created_day)
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _as_date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
