"""LocalStack as the platform runs it, under LocalStack's own Python (infra/localstack/.venv).

Two changes to the emulator, for speed only, each a cost AWS does not have:

- Its Step Functions interpreter parses every JSONPath of a state (``$.next.queue_url``,
  ``ResultPath``, a Choice's ``Variable``) each time the state runs, with jsonpath-ng's parser,
  which builds its LALR tables anew on each call: about 18 ms a path on this machine, 13 paths a
  chain step. A parsed path is immutable (its objects are only read after they are built), so
  each is parsed once and kept; what a path selects, and every error, are the parser's.
- Under hypercorn it answers every request ``Connection: close`` (a 2022 workaround for an h11
  slowdown, localstack#6557), so each AWS call of a function opens a new TCP connection. Kept
  alive, as AWS keeps them, a tiny task takes 40-70 ms less here (docs/measurements.md).
"""

from __future__ import annotations

import functools
import runpy

import jsonpath_ng
import jsonpath_ng.ext

# before LocalStack imports them (``from jsonpath_ng import parse`` for ResultPath, ``.ext`` for the rest)
jsonpath_ng.parse = functools.lru_cache(maxsize=4096)(jsonpath_ng.parse)
jsonpath_ng.ext.parse = functools.lru_cache(maxsize=4096)(jsonpath_ng.ext.parse)


def keep_connections_open(chain: object, context: object, response: object) -> None:
    """In place of the gateway's finalizer that adds ``Connection: close`` to every answer."""


def patch_gateway() -> None:
    import localstack.aws.handlers as handlers  # before the gateway builds its handler chain

    handlers.set_close_connection_header = keep_connections_open


if __name__ == "__main__":
    patch_gateway()
    runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
