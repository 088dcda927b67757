"""Fixtures of the functional tests: the functions' cloud entry as Lambda calls it, and the webhooks
function with a receiver on 127.0.0.1."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from shared.platform import cloud_entry
from tests.conftest import environment
from tests.functional.lambda_events import Event, FakeContext, Invoke
from tests.functional.webhook_notifiers import LOOPBACK, owned
from tests.webhook_receiver import Receiver


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


@pytest.fixture
def hooks(function_client):
    return owned(function_client("webhooks", VISIONFN_WEBHOOK_ALLOWED_NETWORKS=LOOPBACK, VISIONFN_WEBHOOK_MAX_PER_OWNER="3"))


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server
