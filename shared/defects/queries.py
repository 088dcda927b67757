"""The data service's query strings and answers (the seed's field names), and the per-day
statistics with the empty days filled in. Pure: no database here (see records.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationInfo, field_validator, model_validator

#: Largest `limit` of any data query (a page or a "recent" list).
MAX_LIMIT = 1000
#: Largest `page`: offsets stay below 1e9 rows.
MAX_PAGE = 1_000_000
#: statByDate answers one row per day: at most this many days.
MAX_STAT_DAYS = 366
#: The default window of statByDate: the last 15 days, today included.
DEFAULT_STAT_DAYS = 15
#: Dates outside this range are refused (no timestamp arithmetic overflows at their edges).
MIN_DATE, MAX_DATE = dt.date(1970, 1, 1), dt.date(9999, 12, 30)


class _Query(BaseModel):
    """A query string: unknown parameters are ignored, an empty value counts as not given
    (a form's empty field), every value is validated."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if value != ""}
        return data


class RecentQuery(_Query):
    """GET /api/data/getRecent and GET /api/data/analysis."""

    limit: int = Field(120, ge=1, le=MAX_LIMIT, description="How many of the newest records")


class PageQuery(_Query):
    """GET /api/data/getPaginated (deprecated): pages are numbered from 1."""

    limit: int = Field(20, ge=1, le=MAX_LIMIT, description="Records per page")
    page: int = Field(1, ge=1, le=MAX_PAGE, description="Page number, from 1")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def _end_not_before_start(end: dt.date | None, info: ValidationInfo) -> dt.date | None:
    start = info.data.get("start_date")
    if end is not None and start is not None and end < start:
        raise ValueError(f"endDate {end} is before startDate {start}")
    return end


class SearchQuery(PageQuery):
    """GET /api/data/search: every condition given is applied (AND); dates are UTC days, inclusive."""

    name: str | None = Field(
        None, max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$", description="Part of the file name (case-insensitive; no control characters)"
    )
    num: int | None = Field(None, ge=0, le=1_000_000, description="Exact number of defects")
    start_date: dt.date | None = Field(None, alias="startDate", ge=MIN_DATE, le=MAX_DATE, description="First day (YYYY-MM-DD, UTC)")
    end_date: dt.date | None = Field(None, alias="endDate", ge=MIN_DATE, le=MAX_DATE, description="Last day (YYYY-MM-DD, UTC), inclusive")

    _check_end = field_validator("end_date")(_end_not_before_start)


class StatQuery(_Query):
    """GET /api/data/statByDate: a window of days, by default the last 15 (today, UTC, included);
    with only one end given, the 15 days from (or up to) it."""

    start_date: dt.date | None = Field(None, alias="startDate", ge=MIN_DATE, le=MAX_DATE, description="First day (YYYY-MM-DD, UTC)")
    end_date: dt.date | None = Field(None, alias="endDate", ge=MIN_DATE, le=MAX_DATE, description="Last day (YYYY-MM-DD, UTC), inclusive")

    @field_validator("end_date")
    @classmethod
    def _check_window(cls, end: dt.date | None, info: ValidationInfo) -> dt.date | None:
        end = _end_not_before_start(end, info)
        start = info.data.get("start_date")
        if end is not None and start is not None and (end - start).days + 1 > MAX_STAT_DAYS:
            raise ValueError(f"the window from {start} to {end} is {(end - start).days + 1} days; at most {MAX_STAT_DAYS}")
        return end

    def window(self, today: dt.date) -> tuple[dt.date, dt.date]:
        """The first and last day to report, both included."""
        span = dt.timedelta(days=DEFAULT_STAT_DAYS - 1)
        if self.start_date and self.end_date:
            return self.start_date, self.end_date
        if self.start_date:  # at most MAX_DATE: a window near it is shorter (no date past year 9999)
            return self.start_date, self.start_date + min(span, MAX_DATE - self.start_date)
        end = self.end_date or today
        return end - min(span, end - MIN_DATE), end


# --- answers -------------------------------------------------------------------------------------


class RecordOut(BaseModel):
    """One inspection record, as the seed names its fields (date and time in UTC)."""

    figId: int = Field(description="The record's id")
    name: str = Field(description="File name of the inspected image")
    resFig: str | None = Field(description="Object key of the annotated picture in the bucket (outputs/defects/...)")
    date: str = Field(description="Day of the inspection, YYYY-MM-DD (UTC)")
    time: str = Field(description="Time of the inspection, HH:MM:SS (UTC)")
    label: str = Field(description="The image's class")
    num: int = Field(description="Number of defects found")
    dice: float = Field(description="Confidence of the class, 0..1")


class RecentRecords(RootModel[list[RecordOut]]):
    """Newest first."""


class RecordPage(BaseModel):
    total: int = Field(description="Records matching the conditions, before paging")
    data: list[RecordOut]


class DayStat(BaseModel):
    record_count: int
    stat_date: str = Field(description="YYYY-MM-DD (UTC)")
    total_num: int = Field(description="Defects found that day")


class DayStats(RootModel[list[DayStat]]):
    """One row per day of the window, oldest first, days without records included (zeros)."""


def fill_days(start: dt.date, end: dt.date, counted: Mapping[dt.date, tuple[int, int]]) -> list[DayStat]:
    """One row per day from ``start`` to ``end`` (both included), oldest first: ``counted``'s
    ``(records, defects)`` for the days it has, zeros for the others."""
    days = (end - start).days + 1
    rows = []
    for offset in range(max(days, 0)):
        day = start + dt.timedelta(days=offset)
        records, defects = counted.get(day, (0, 0))
        rows.append(DayStat(record_count=records, stat_date=day.isoformat(), total_num=defects))
    return rows


#: GET /api/data/getPaginated is deprecated in favour of search (RFC 9745's header: the day it was, 2026-11-27).
PAGINATED_DEPRECATION_HEADERS = {
    "Deprecation": "@1795737600",
    "Link": '</api/data/search>; rel="successor-version"',
}
