"""Schemathesis against the running stack, from the OpenAPI document the gateway serves:
no server error, no response that breaks the document."""

import subprocess
import sys
from pathlib import Path

from shared.platform.keys import ApiKeys

EXAMPLES_PER_OPERATION = "30"


def test_the_api_survives_property_based_fuzzing_from_its_openapi_document(platform, database_url):
    _record, key = ApiKeys(database_url).create("fuzzer", "schemathesis")  # its settings stay its own
    schemathesis = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(schemathesis),
            "--no-color",
            "run",
            f"{platform.gateway}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--header",
            f"Authorization: Bearer {key}",
            "--max-examples",
            EXAMPLES_PER_OPERATION,
            "--request-timeout",
            "60",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    report = result.stdout + result.stderr
    print(report[-6000:])  # what the run covered (operations, cases per phase), in the test log
    assert result.returncode == 0, report[-8000:]
