"""LocalStack's entry point (infra/localstack/start.py): every JSONPath parsed once, selecting what
the parser selects; connections kept alive. Runs under LocalStack's own Python, where both live."""

from __future__ import annotations

import os
import subprocess

from infra.settings import RunnerSettings
from infra.stack import LOCALSTACK_PYTHON, LOCALSTACK_START, localstack_command, localstack_environment

CHECK = """
import json
import jsonpath_ng, jsonpath_ng.ext
uncached = jsonpath_ng.ext.parse, jsonpath_ng.parse
import start
document = {"next": {"queue_url": "q", "next": {"step": 1}}, "answer": {"found": False}, "items": [1, 2]}
paths = ["$.next.queue_url", "$.next.next", "$.answer.found", "$.items[1]", "$.items[*]"]
print(json.dumps({
    "same_object": all(jsonpath_ng.ext.parse(p) is jsonpath_ng.ext.parse(p) for p in paths)
                   and jsonpath_ng.parse("$.answer") is jsonpath_ng.parse("$.answer"),
    "same_values": all([m.value for m in jsonpath_ng.ext.parse(p).find(document)]
                       == [m.value for m in uncached[0](p).find(document)] for p in paths),
    "set_path": jsonpath_ng.parse("$.answer").update_or_create(dict(document), {"found": True})["answer"],
    "same_set_twice": jsonpath_ng.parse("$.answer").update_or_create({}, 1) == {"answer": 1},
}))
"""


def test_localstack_runs_from_its_start_script() -> None:
    assert localstack_command() == [str(LOCALSTACK_PYTHON), str(LOCALSTACK_START)]


def under_localstack(script: str) -> str:
    """What ``script`` prints, run by LocalStack's Python with the platform's LocalStack
    environment, ``start`` importable (as a module: its patches apply, LocalStack does not start)."""
    preamble = f"import sys\nsys.path.insert(0, {str(LOCALSTACK_START.parent)!r})\n"
    environment = {**os.environ, **localstack_environment(RunnerSettings())}
    return subprocess.run(
        [str(LOCALSTACK_PYTHON), "-c", preamble + script], capture_output=True, text=True, check=True, env=environment
    ).stdout


def test_each_jsonpath_is_parsed_once_and_selects_what_the_parser_selects() -> None:
    assert (
        under_localstack(CHECK).strip() == '{"same_object": true, "same_values": true, "set_path": {"found": true}, "same_set_twice": true}'
    )


KEEP_ALIVE = """
import start
start.patch_gateway()
from localstack import config
from localstack.aws.api import RequestContext
from localstack.aws.app import LocalstackAwsGateway
from localstack.http import Request, Response
finalizers = LocalstackAwsGateway().finalizers
response = Response()
finalizers[0](None, RequestContext(Request("GET", "/")), response)
print(config.GATEWAY_SERVER, response.headers.get("Connection"))
"""


def test_the_gateway_keeps_connections_open() -> None:
    assert under_localstack(KEEP_ALIVE).split()[-2:] == ["hypercorn", "None"]
