"""One function, served as the ``functions-framework`` command serves it (its ``create_app``,
its gunicorn application, one gthread worker), with two additions: every read from a client
must arrive within ``VISIONFN_REQUEST_READ_TIMEOUT`` seconds (a client that sends half a
request and stalls, slowloris, is dropped instead of holding one of the function's threads),
and a request Flask itself refuses before the function sees it (a path its catch-all route
does not match, such as one with a newline) gets the API's JSON error, not an HTML page; so
does one gunicorn cannot parse. gunicorn trusts no forwarder: no peer's ``SCRIPT_NAME``,
``X-Forwarded-Proto`` or ``X-Forwarded-Ssl`` changes the path or the scheme a function sees,
and headers with ``_`` in their name are dropped (the gateway sends none).

``python -m infra.serve --source=functions/<name>/main.py --target=handle --port=8100``
(what the runner starts for each function).
"""

from __future__ import annotations

import argparse
import json

import flask
import gunicorn.glogging
import gunicorn.util
from functions_framework import create_app
from functions_framework._http import create_server
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.exceptions import HTTPException

from infra.settings import SERVER_KEEPALIVE_SECONDS, get_runner_settings
from shared.platform.http import json_response


class ReadTimeoutThreadWorker(ThreadWorker):
    """gunicorn's gthread worker whose connections time out on reads (and writes)."""

    def handle(self, conn):  # noqa: ANN001, ANN201 (gunicorn's signature)
        if not getattr(conn, "read_timeout_set", False):
            plain_init = conn.init
            timeout = get_runner_settings().request_read_timeout

            def init_with_timeout() -> None:
                plain_init()
                conn.sock.settimeout(timeout)  # after gunicorn made it blocking (no timeout)

            conn.init = init_with_timeout
            conn.read_timeout_set = True
        return super().handle(conn)


class RootLogger(gunicorn.glogging.Logger):
    """gunicorn's own lines (its error log) through the root logger: the function's JSON lines."""

    def setup(self, cfg) -> None:  # noqa: ANN001 (gunicorn's config)
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers = []
            logger.propagate = True


#: gunicorn's options here: no peer is a trusted proxy (by default 127.0.0.1 is, and so the
#: gateway's clients were): no forwarded SCRIPT_NAME/PATH_INFO, no scheme from headers.
TRUST_NO_FORWARDER = {"forwarded_allow_ips": "", "forwarder_headers": "", "secure_scheme_headers": {}}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:  # noqa: ANN001 (gunicorn's socket)
    """gunicorn's answer to a request it could not parse (util.write_error), as the API's JSON."""
    body = json.dumps({"detail": f"{reason}: {mesg}" if mesg else reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


def refused_by_flask(error: HTTPException) -> flask.Response:
    status = error.code if error.code and 400 <= error.code < 500 else 400
    return json_response({"detail": f"{error.name}: {flask.request.method} {flask.request.path!r}"}, status=status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    app = create_app(options.target, options.source, "http")
    app.register_error_handler(HTTPException, refused_by_flask)
    gunicorn.util.write_error = write_json_error  # what its workers call on a request they cannot parse
    create_server(
        app,
        False,
        worker_class=f"{__name__}.ReadTimeoutThreadWorker",
        logger_class=f"{__name__}.RootLogger",
        keepalive=SERVER_KEEPALIVE_SECONDS,
        **TRUST_NO_FORWARDER,
    ).run(options.host, options.port)


if __name__ == "__main__":
    main()
