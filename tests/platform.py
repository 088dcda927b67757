"""Starts the real local platform (the runner's `up`) for functional and integration tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import requests

from shared.platform.settings import PROJECT_ROOT

FUNCTION_COUNT_BOUND = 32  # ports reserved for function processes


@dataclass(frozen=True)
class RunningPlatform:
    state: dict
    env: dict[str, str]  # what a process needs to reach this platform as the functions do
    run_dir: Path

    @property
    def gateway(self) -> str:
        return self.state["gateway_url"]

    @property
    def key(self) -> str:
        """The API key `make up` made for the owner ``local`` (``<run_dir>/api-key``)."""
        return (self.run_dir / "api-key").read_text().strip()

    @cached_property
    def http(self) -> requests.Session:
        """HTTP to the gateway with that key."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.key}"
        return session

    def log(self, name: str) -> str:
        return (self.run_dir / "logs" / f"{name}.log").read_text(errors="replace")


def _ephemeral_ports_start() -> int:
    """Where the kernel's ports for outgoing connections begin (Linux's default: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


EPHEMERAL_PORTS_START = _ephemeral_ports_start()


def _port_block_is_free(first: int, count: int) -> bool:
    for port in range(first, first + count):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_block(count: int, start: int = 20000) -> int:
    """The first of ``count`` free ports on 127.0.0.1 from ``start``. Keep ``start`` below the kernel's ephemeral
    ports (Linux: 32768-60999): there an outgoing connection can take the port between this probe and the bind."""
    if start + count > EPHEMERAL_PORTS_START:
        raise ValueError(f"ports from {start} reach the ephemeral range ({EPHEMERAL_PORTS_START}+)")
    for first in range(start, EPHEMERAL_PORTS_START - count + 1, count):
        if _port_block_is_free(first, count):
            return first
    raise RuntimeError("no free block of ports on 127.0.0.1")


@contextmanager
def running_platform(database_url: str, name: str = "test", **overrides: str) -> Iterator[RunningPlatform]:
    base = free_port_block(FUNCTION_COUNT_BOUND + 2)
    run_dir = PROJECT_ROOT / ".run" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VISIONFN_RUN_DIR": str(run_dir),
        "VISIONFN_STACK_NAME": f"visionfn-{name}",
        "VISIONFN_LOCALSTACK_PORT": str(base),
        "VISIONFN_GATEWAY_PORT": str(base + 1),
        "VISIONFN_FUNCTION_BASE_PORT": str(base + 2),
        **overrides,
    }
    with (run_dir / "runner.log").open("wb") as runner_log:
        runner = subprocess.Popen(
            [sys.executable, "-m", "infra.runner", "up"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=runner_log,
            stderr=subprocess.STDOUT,
        )
    state_file = run_dir / "state.json"
    try:
        deadline = time.monotonic() + 180
        while not state_file.exists():
            if runner.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the platform did not start:\n{(run_dir / 'runner.log').read_text(errors='replace')}")
            time.sleep(0.1)
        state = json.loads(state_file.read_text())
        client_env = {
            "AWS_ENDPOINT_URL": state["localstack_url"],
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DATABASE_URL": database_url,
            "VISIONFN_BUCKET": state["bucket"],
            "VISIONFN_QUEUE_PREFIX": f"{state['stack_name']}-",
            "VISIONFN_EVENT_BUS": state["outputs"]["EventBusName"],
        }
        yield RunningPlatform(state=state, env=client_env, run_dir=run_dir)
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGINT)
            try:
                runner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                runner.kill()
