"""Fixtures of the functional tests that call the functions' cloud entry."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from shared.platform import cloud_entry
from tests.conftest import environment
from tests.functional.lambda_events import Event, FakeContext, Invoke


@pytest.fixture
def cloud(platform_env) -> Iterator[Invoke]:
    """``cloud(function, event, remaining_ms=60_000, **settings)``: the handler as Lambda calls it. Each test
    starts its functions cold (loaded at their first event, with the settings given then)."""

    def invoke(function: str, event: Event, remaining_ms: int = 60_000, **settings: str) -> dict:
        with environment(FUNCTION=function, **settings):
            return cloud_entry.handler(copy.deepcopy(event), FakeContext(remaining_ms))

    cloud_entry._served.cache_clear()
    yield invoke
    cloud_entry._served.cache_clear()
