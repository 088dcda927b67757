"""Structured logs: one JSON object per line, from every process (functions, their work processes,
the gateway, the event bridge, the runner), to standard output (a log file locally, CloudWatch Logs
deployed).

Each line has ``timestamp``, ``level``, ``function``, ``message`` and ``location`` (Powertools for
AWS Lambda's formatter, so CloudWatch Logs Insights and its users read it as they read Powertools'
Logger), plus the context of the work in hand: ``request_id``, ``task_uid``, ``owner``,
``execution``, ``cold_start`` ... set with ``log_context`` where the work arrives (a request, a
queue message, a state machine step) and carried into the work processes. Never a key or a
secret: only what is put in the context or passed as ``extra`` is written.

``VISIONFN_LOG_FORMAT=text`` writes plain lines for a terminal instead."""

from __future__ import annotations

import logging
import re
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType, TracebackType
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from shared.platform.settings import get_settings

#: The context of the work in hand; each request, message or step gets its own (``log_context``).
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("visionfn_log_context", default=MappingProxyType({}))
_PROCESS = {"function": "", "cold": True}

#: The header that carries a job's id from the client to the webhook (and back in every answer).
REQUEST_ID_HEADER = "X-Request-Id"
#: ... and the message attribute that carries it on a queue's messages.
REQUEST_ID_ATTRIBUTE = "request_id"
#: A client's own request id is taken when it is made of these (and is at most 128 of them).
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def valid_request_id(value: object) -> str | None:
    """``value`` when it may serve as a request id (safe characters, bounded), else None."""
    return value if isinstance(value, str) and _SAFE_REQUEST_ID.fullmatch(value) else None


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside carries ``fields`` (those that are None are left out) beside the
    outer context's."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{key: value for key, value in fields.items() if value is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def add_log_context(**fields: Any) -> None:
    """Add ``fields`` to the current context (until the enclosing ``log_context`` ends)."""
    _CONTEXT.set({**_CONTEXT.get(), **{key: value for key, value in fields.items() if value is not None}})


def current_log_context() -> dict[str, Any]:
    return dict(_CONTEXT.get())


def current_request_id() -> str | None:
    return _CONTEXT.get().get("request_id")


def cold_start() -> bool:
    """True the first time it is asked in this process (its first request or event), then False."""
    first, _PROCESS["cold"] = _PROCESS["cold"], False
    return bool(first)


def function_name() -> str:
    """The name this process logs under (``configure_logging``)."""
    return str(_PROCESS["function"])


class _WithContext(logging.Filter):
    """Puts the current context's fields on each record (what a call's ``extra`` sets wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


class _PlainText(logging.Formatter):
    """``time level function logger: message [key=value ...]`` for a terminal."""

    def __init__(self, function: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {function} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{key}={value}" for key, value in _CONTEXT.get().items())
        return f"{line} [{context}]" if context else line


def json_formatter(function: str) -> logging.Formatter:
    """Powertools' JSON formatter, keyed ``timestamp, level, function, message`` first."""
    formatter = LambdaPowertoolsFormatter(
        utc=True,
        use_rfc3339=True,
        log_record_order=["timestamp", "level", "function", "message"],
        function=function,
    )
    formatter.remove_keys(["service"])  # Powertools' name for it; here the function names the process
    return formatter


def configure_logging(name: str) -> logging.Logger:
    """This process logs as ``name``: every logger (ours, gunicorn's, botocore's) to standard
    output in the configured format, and an uncaught exception is logged too, not printed."""
    _PROCESS["function"] = name
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_PlainText(name) if get_settings().log_format == "text" else json_formatter(name))
    handler.addFilter(_WithContext())
    root = logging.getLogger()
    # the one handler: it replaces basicConfig's, the Lambda runtime's (a second copy of each line);
    # a test runner's capturing handler stays
    root.handlers = [*(kept for kept in root.handlers if type(kept).__module__.startswith("_pytest")), handler]
    level = logging.getLevelName(get_settings().log_level.upper())
    level = level if isinstance(level, int) else logging.INFO
    root.setLevel(max(level, logging.INFO))  # DEBUG is this project's (each hop of a job), not every library's
    logging.getLogger("visionfn").setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda hook: _log_uncaught(hook.exc_type, hook.exc_value or hook.exc_type(), hook.exc_traceback)
    return logging.getLogger(f"visionfn.{name}")


def _log_uncaught(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logging.getLogger("visionfn.uncaught").critical("uncaught %s", kind.__name__, exc_info=(kind, error, traceback))
