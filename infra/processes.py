"""Child processes of the runner: each in its own session, logged to one file, restarted when it dies.
A function in a container is such a process too: ``podman run --rm`` in the foreground, which lives
as long as its container, passes on its output and exit status, and forwards SIGTERM to it.

A child's output reaches its log through the runner, line by line: a line that is not a JSON object
(what native code or a third party writes: a crash's last words, LocalStack's own lines) is wrapped
into one, so every line of every log is JSON, as in CloudWatch Logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO

#: Restart delays after a child died: doubled on each quick death, up to the cap; a child that
#: stayed up ``STABLE_SECONDS`` starts again from the first delay.
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
STABLE_SECONDS = 10.0
#: How often a request or an invocation tries again to reach a function that is being restarted.
RESTART_POLL_SECONDS = 0.05

#: podman with the runc runtime: crun, its default, fails on this machine kind's hybrid cgroups
PODMAN = ("podman", "--runtime", "runc")


class PortInUse(RuntimeError):
    pass


def ensure_port_free(port: int, owner: str) -> None:
    """Raise unless a server could listen on ``port`` now. SO_REUSEADDR, as servers bind: sockets
    left in TIME_WAIT by a platform that just stopped do not count as taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError as error:
            raise PortInUse(
                f"port {port} on 127.0.0.1 (wanted by {owner}) is already in use: {error.strerror}. "
                f"Stop whatever holds it (`make down`, `ss -ltnp 'sport = :{port}'`) or choose "
                f"other ports (see VISIONFN_*_PORT in docs/configuration.md)."
            ) from error


def port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def open_private_log(path: Path) -> BinaryIO:
    """``path`` opened to append, readable by its owner only (0600; a log may hold what a request
    carried): made so, and an older log of looser mode made so too."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "ab")


def copy_output(output: IO[bytes], log_file: BinaryIO, name: str) -> None:
    """Append each line of ``output`` to the log, as it comes, until the process closes it."""
    with log_file:
        for line in iter(output.readline, b""):
            log_file.write(line if _is_json_object(line) else as_json_line(line, name))
            log_file.flush()
    output.close()


def _is_json_object(line: bytes) -> bool:
    if not line.startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def as_json_line(line: bytes, name: str) -> bytes:
    """A line of plain output as a log record: its text is the message."""
    record = {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "INFO",
        "function": name,
        "message": line.rstrip(b"\r\n").decode(errors="replace"),
        "plain_output": True,
    }
    return json.dumps(record).encode() + b"\n"


def describe_exit(code: int, container: bool = False) -> str:
    if container and code > 128:  # podman run exits with 128 + the signal that ended its container
        return f"{describe_exit(128 - code)} (container exit status {code})"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class ChildProcess:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] = field(init=False)
    output_copy: threading.Thread = field(init=False)  # copies its output to its log; ends when it does
    started_at: float = field(init=False, default=0.0)
    restarts: int = 0
    last_exit: str | None = None
    restart_at: float | None = None  # set while it waits to be restarted
    restart_delay: float = FIRST_RESTART_DELAY
    container: str | None = None  # the container's name when the command is its `podman run`

    @classmethod
    def start(cls, name: str, command: list[str], env: dict[str, str], log_dir: Path, container: str | None = None) -> ChildProcess:
        log_dir.mkdir(parents=True, exist_ok=True)
        child = cls(name, command, env, log_dir / f"{name}.log", container=container)
        child._spawn()
        return child

    def _spawn(self) -> None:
        log_file = open_private_log(self.log_path)
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.output_copy = threading.Thread(target=copy_output, args=(self.process.stdout, log_file, self.name), daemon=True)
        self.output_copy.start()
        self.started_at = time.monotonic()

    def exited(self) -> int | None:
        return self.process.poll()

    def schedule_restart(self) -> float:
        """After it died: remove what is left of its process group, pick the delay (backoff)."""
        self.last_exit = describe_exit(self.process.returncode, container=self.container is not None)
        self._kill_group(signal.SIGKILL)
        self._remove_container()  # a container whose `podman run` was killed still runs, holding its port
        if time.monotonic() - self.started_at >= STABLE_SECONDS:
            self.restart_delay = FIRST_RESTART_DELAY
        delay = self.restart_delay
        self.restart_delay = min(self.restart_delay * 2, MAX_RESTART_DELAY)
        self.restart_at = time.monotonic() + delay
        return delay

    def restart_if_due(self) -> bool:
        if self.restart_at is None or time.monotonic() < self.restart_at:
            return False
        self.restart_at = None
        self.restarts += 1
        self._spawn()
        return True

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace_seconds: float = 8.0) -> None:
        if self.process.poll() is not None:
            self._kill_group(signal.SIGKILL)  # what it may have left behind
            self._remove_container()
            return
        self.terminate()
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.05)
        stopped = self.process.poll() is not None
        self._kill_group(signal.SIGKILL)
        self.process.wait()
        if not stopped:
            self._remove_container()  # killing `podman run` leaves its container running

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM; `podman run` forwards it to its container)."""
        if self.process.poll() is None:
            self._kill_group(signal.SIGTERM)

    def _remove_container(self) -> None:
        if self.container:
            subprocess.run([*PODMAN, "rm", "--force", "--ignore", self.container], capture_output=True, check=False)

    def _kill_group(self, signal_number: int) -> None:
        try:
            os.killpg(self.process.pid, signal_number)
        except (ProcessLookupError, PermissionError):
            pass
