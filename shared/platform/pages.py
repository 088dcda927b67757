"""Offset pagination, written once: the query every new list route takes, and the two statements
(the total, the rows of one page) every list runs. New routes answer ``{"total": n, "<items>": [...]}``;
the seed-compatible data service keeps its own envelope but counts and pages the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Select, func, select


class ListQuery(BaseModel):
    """``?offset=&limit=`` of a list route (unknown parameters are ignored, as browsers add some)."""

    model_config = ConfigDict(extra="ignore")

    offset: int = Field(0, ge=0, le=1_000_000_000)
    limit: int = Field(50, ge=1, le=200)


def page_statements(
    table: Any, conditions: Sequence[ColumnElement[bool]], columns: Sequence[Any], order_by: Sequence[Any], offset: int, limit: int
) -> tuple[Select[Any], Select[Any]]:
    """``(count, rows)``: how many rows of ``table`` meet ``conditions``, and ``columns`` of one
    page of them in ``order_by`` order."""
    count = select(func.count()).select_from(table).where(*conditions)
    rows = select(*columns).where(*conditions).order_by(*order_by).offset(offset).limit(limit)
    return count, rows
