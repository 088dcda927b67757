"""Fixtures of the client's tests: the scripted server, and no developer's configuration."""

from __future__ import annotations

import pytest

from tests.unit.client.scripted_server import Scripted


@pytest.fixture
def server():
    running = Scripted()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    """No developer's own configuration leaks in (nor the key `make up` wrote in this checkout)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("VISIONFN_RUN_DIR", str(tmp_path / "no-run"))
    for name in ("VISIONFN_URL", "VISIONFN_API_KEY", "VISIONFN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
