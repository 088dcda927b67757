"""GET /api/data/*: the caller's inspection records: recent, per day, pages (deprecated), search,
and their analysis."""

import flask

from shared.defects.analysis import analyse
from shared.defects.narrative import with_narrative
from shared.defects.queries import (
    PAGINATED_DEPRECATION_HEADERS,
    DayStats,
    PageQuery,
    RecentQuery,
    RecentRecords,
    SearchQuery,
    StatQuery,
)
from shared.defects.records import DefectRecords
from shared.defects.settings import get_defect_settings
from shared.platform.access import caller
from shared.platform.db.models import utc_now
from shared.platform.http import FunctionRoutes, json_response, parse_query
from shared.platform.logs import configure_logging

configure_logging("defect_data")
routes = FunctionRoutes()
records = DefectRecords()


@routes.get("/api/data/getRecent")
def get_recent(request: flask.Request) -> flask.Response:
    query = parse_query(RecentQuery, request)
    return json_response(RecentRecords(records.recent(caller(request.headers), query.limit)))


@routes.get("/api/data/statByDate")
def stat_by_date(request: flask.Request) -> flask.Response:
    query = parse_query(StatQuery, request)
    start, end = query.window(today=utc_now().date())
    return json_response(DayStats(records.stat_by_date(caller(request.headers), start, end)))


@routes.get("/api/data/getPaginated")
def get_paginated(request: flask.Request) -> flask.Response:
    query = parse_query(PageQuery, request)
    response = json_response(records.search(caller(request.headers), query))
    response.headers.update(PAGINATED_DEPRECATION_HEADERS)
    return response


@routes.get("/api/data/search")
def search(request: flask.Request) -> flask.Response:
    query = parse_query(SearchQuery, request)
    return json_response(records.search(caller(request.headers), query))


@routes.get("/api/data/analysis")
def analysis(request: flask.Request) -> flask.Response:
    query = parse_query(RecentQuery, request)
    summary = analyse(records.recent(caller(request.headers), query.limit))
    return json_response(with_narrative(summary, get_defect_settings()))


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)
