"""Every function as Lambda runs it (test_cloud_entry_*.py): every (function, event kind) pair that
template.yaml has is sent through ``shared.platform.cloud_entry.handler`` by one of those tests."""

from __future__ import annotations

import tests.functional.test_cloud_entry_jobs
import tests.functional.test_cloud_entry_requests
from shared.platform.settings import PROJECT_ROOT
from tests.functional.lambda_events import COVERED, template_event_kinds

#: The tests of these modules register their pairs (``covers``) when the module is imported: imported
#: here too, so that the check below holds when this file runs alone.
REGISTERING = (tests.functional.test_cloud_entry_jobs, tests.functional.test_cloud_entry_requests)


def test_every_function_and_every_kind_of_event_it_gets_in_the_template_is_tested_here():
    expected = template_event_kinds()
    assert {name for name, _ in expected} == {path.parent.name for path in (PROJECT_ROOT / "functions").glob("*/main.py")}
    assert expected - COVERED == set(), "untested (function, event kind) pairs"
    assert COVERED - expected == set(), "tests claim pairs the template does not have"
