"""Port checks report clearly."""

import socket

import pytest

from infra.processes import PortInUse, ensure_port_free, port_accepts


def test_taken_port_is_reported_with_its_owner():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_accepts(port)
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 \\(wanted by the gateway\\)"):
            ensure_port_free(port, "the gateway")
    ensure_port_free(port, "the gateway")
    assert not port_accepts(port)


def test_a_child_that_dies_is_reported_with_its_log(tmp_path):
    import sys
    import time

    from infra.processes import ChildProcess
    from infra.runner import Platform, StartupError
    from shared.settings import Settings

    platform = Platform(Settings(run_dir=tmp_path))
    child = ChildProcess.start(
        "broken", [sys.executable, "-c", "print('cannot import model'); raise SystemExit(3)"], {}, tmp_path
    )
    platform.children.append(child)
    child.process.wait(10)
    time.sleep(0.1)
    with pytest.raises(StartupError, match=r"broken \(pid \d+\) exited with code 3(.|\n)*cannot import model"):
        platform.raise_if_a_child_died()
