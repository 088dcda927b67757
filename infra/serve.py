"""One function, served as the ``functions-framework`` command serves it (its ``create_app``,
its gunicorn application, one gthread worker), with one addition: every read from a client
must arrive within ``VISIONFN_REQUEST_READ_TIMEOUT`` seconds. A client that sends half a
request and stalls (slowloris) is dropped instead of holding one of the function's threads.

``python -m infra.serve --source=functions/<name>/main.py --target=handle --port=8100``
(what the runner starts for each function).
"""

from __future__ import annotations

import argparse

from functions_framework import create_app
from functions_framework._http import create_server
from gunicorn.workers.gthread import ThreadWorker

from shared.settings import get_settings


class ReadTimeoutThreadWorker(ThreadWorker):
    """gunicorn's gthread worker whose connections time out on reads (and writes)."""

    def handle(self, conn):  # noqa: ANN001, ANN201 (gunicorn's signature)
        if not getattr(conn, "read_timeout_set", False):
            plain_init = conn.init
            timeout = get_settings().request_read_timeout

            def init_with_timeout() -> None:
                plain_init()
                conn.sock.settimeout(timeout)  # after gunicorn made it blocking (no timeout)

            conn.init = init_with_timeout
            conn.read_timeout_set = True
        return super().handle(conn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    app = create_app(options.target, options.source, "http")
    create_server(app, False, worker_class=f"{__name__}.ReadTimeoutThreadWorker").run(options.host, options.port)


if __name__ == "__main__":
    main()
