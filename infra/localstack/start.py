"""LocalStack as the platform runs it, under LocalStack's own Python (infra/localstack/.venv).

One change to the emulator, for speed only: its Step Functions interpreter parses every JSONPath of
a state (``$.next.queue_url``, ``ResultPath``, a Choice's ``Variable``) each time the state runs,
with jsonpath-ng's parser, which builds its LALR tables anew on each call: about 18 ms a path on
this machine, 13 paths a chain step. AWS has no such cost. A parsed path is immutable (its
objects are only read after they are built), so each is parsed once and kept. Nothing else
differs: what a path selects, and every error, are the parser's.
"""

from __future__ import annotations

import functools
import runpy

import jsonpath_ng
import jsonpath_ng.ext

# before LocalStack imports them (``from jsonpath_ng import parse`` for ResultPath, ``.ext`` for the rest)
jsonpath_ng.parse = functools.lru_cache(maxsize=4096)(jsonpath_ng.parse)
jsonpath_ng.ext.parse = functools.lru_cache(maxsize=4096)(jsonpath_ng.ext.parse)

if __name__ == "__main__":
    runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
