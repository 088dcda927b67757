"""Work in child processes: results and errors come back, deadlines and crashes cost one call."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from shared.platform.errors import LeaseLost, NotAnImage, TimedOut
from shared.platform.settings import PROJECT_ROOT
from shared.platform.work_processes import WorkCrashed, WorkFailed, WorkProcesses


def add(a, b):
    return a + b


def child_pid():
    return os.getpid()


def refuse(detail):
    raise NotAnImage(detail)


def divide_by_zero():
    return 1 / 0


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def imported(name):
    return name in sys.modules


@pytest.fixture(scope="module")
def work():
    return WorkProcesses(max_idle=1)


def _run(work, function, *args, seconds=30.0, **options):
    return work.run(function, args, deadline=time.monotonic() + seconds, timeout_message="too slow", **options)


def test_the_result_comes_back_and_the_child_is_reused(work):
    assert _run(work, add, 2, 3) == 5
    first = _run(work, child_pid)
    assert first != os.getpid()
    assert _run(work, child_pid) == first


def test_an_error_comes_back_with_its_class_and_detail(work):
    with pytest.raises(NotAnImage) as caught:
        _run(work, refuse, "not a PNG")
    assert caught.value.detail == "not a PNG" and caught.value.status == 400


def test_a_bug_is_reported_with_its_type(work):
    with pytest.raises(WorkFailed, match="ZeroDivisionError"):
        _run(work, divide_by_zero)


def test_work_past_its_deadline_is_stopped_and_the_next_call_works(work):
    pid = _run(work, child_pid)
    started = time.monotonic()
    with pytest.raises(TimedOut, match="too slow"):
        _run(work, sleep, 30, seconds=0.5)
    assert time.monotonic() - started < 10  # stopped at the deadline, not after the 30 s sleep
    assert not _alive(pid)
    assert _run(work, add, 1, 1) == 2


def test_a_crash_costs_that_call_only(work):
    with pytest.raises(WorkCrashed, match="died"):
        _run(work, die)
    assert _run(work, add, 2, 2) == 4


def test_tick_runs_while_waiting_and_a_failing_tick_stops_the_work(work):
    ticks = []
    assert _run(work, sleep, 0.5, tick=lambda: ticks.append(1), tick_seconds=0.1) == 0.5
    assert len(ticks) >= 2
    pid = _run(work, child_pid)

    def lose_lease():
        raise LeaseLost("another attempt holds it")

    with pytest.raises(LeaseLost):
        _run(work, sleep, 30, tick=lose_lease, tick_seconds=0.1)
    assert not _alive(pid)


def test_the_child_exits_when_its_parent_is_killed(tmp_path):
    script = textwrap.dedent(
        """
        import sys, time
        from shared.platform.work_processes import WorkProcesses
        from tests.unit.test_work_processes import child_pid, sleep
        work = WorkProcesses()
        print(work.run(child_pid, (), deadline=time.monotonic() + 30, timeout_message="x"), flush=True)
        work.run(sleep, (60,), deadline=time.monotonic() + 90, timeout_message="x")
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    assert _alive(pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def test_a_server_forked_from_the_function_has_a_warm_child_before_its_first_call():
    """GIVEN work processes that want ``colorsys`` warm, WHEN the process forks (gunicorn starting
    its worker, or starting it again after a crash), THEN the forked one has ``max_idle`` idle
    children with the module imported before any call (one per call the function may serve at
    once), and its first call runs in one of them; the parent makes none."""
    script = textwrap.dedent(
        """
        import os, sys, time
        from shared.platform.work_processes import WorkProcesses
        from tests.unit.test_work_processes import child_pid, imported
        work = WorkProcesses(warm="colorsys")
        assert not work._idle
        pid = os.fork()
        if pid == 0:
            deadline = time.monotonic() + 60
            while len(work._idle) < work.max_idle and time.monotonic() < deadline:
                time.sleep(0.05)
            warm = {child.process.pid for child in work._idle}
            first = work.run(child_pid, (), deadline=time.monotonic() + 30, timeout_message="x")
            had = work.run(imported, ("colorsys",), deadline=time.monotonic() + 30, timeout_message="x")
            print(len(warm), first in warm, had, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent idle", len(work._idle), flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == ["2 True True", "parent idle 0"], done.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _warm_child_gives_up_after(work: WorkProcesses, seconds: float) -> None:
    """In a thread: after ``seconds``, the warm child being made (``_warming``) gives up."""

    def give_up() -> None:
        time.sleep(seconds)
        with work._changed:
            work._warming = 0
            work._changed.notify_all()

    threading.Thread(target=give_up, daemon=True).start()


def test_a_call_waiting_for_a_warm_child_keeps_its_heartbeat():
    """GIVEN a warm child still being made, WHEN a call comes, THEN it waits for one, running its
    ``tick`` (the lease's heartbeat) every ``tick_seconds`` meanwhile, and then runs."""
    work = WorkProcesses(max_idle=1)
    with work._changed:
        work._warming = 1  # as prewarm() leaves it while the child imports its module
    ticks = []

    _warm_child_gives_up_after(work, 0.6)
    assert work.run(child_pid, (), deadline=time.monotonic() + 30, timeout_message="x", tick=lambda: ticks.append(1), tick_seconds=0.1)
    assert len(ticks) >= 4


def test_a_call_waiting_for_a_warm_child_stops_at_its_deadline():
    """GIVEN a warm child still being made (for longer than the call may take), WHEN a call comes,
    THEN it is timed out at its deadline instead of waiting for the child."""
    work = WorkProcesses(max_idle=1)
    with work._changed:
        work._warming = 1

    _warm_child_gives_up_after(work, 3)
    with pytest.raises(TimedOut, match="took too long"):
        work.run(child_pid, (), deadline=time.monotonic() + 0.3, timeout_message="took too long", tick_seconds=0.1)
