"""CPU-heavy work in warm child processes, so that it can be stopped and cannot take others down.

A call runs in a child process (spawned once, then reused while idle): the function's HTTP
side and its other invocations keep their threads and their process; a call past its deadline
is stopped by killing its child (``TimedOut``); a crash in native code (a segfault, an abort,
``kill -9``) costs that call only (``WorkCrashed``). While the caller waits it runs ``tick``
every ``tick_seconds`` (the lease heartbeat); if ``tick`` raises, the work is stopped too.

A child whose parent dies exits at once (it watches its parent), so no work outlives the
function process that asked for it.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from shared.platform.errors import TimedOut, VisionFnError
from shared.platform.logs import configure_logging, current_log_context, function_name, log_context

log = logging.getLogger("visionfn.work")

_SPAWN = multiprocessing.get_context("spawn")  # no fork: OpenCV/MediaPipe threads do not survive it
PARENT_CHECK_SECONDS = 0.5
PREWARM_SECONDS = 120.0


class WorkCrashed(VisionFnError):
    """The child process died during the call (signal, native crash, out of memory)."""

    status = 500


class WorkFailed(VisionFnError):
    """The call raised an unexpected exception in the child (a bug; the message says which)."""

    status = 500


def import_module(name: str) -> None:
    """Import ``name`` in this (child) process: what a warm child runs first."""
    importlib.import_module(name)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def _serve(connection: Connection, parent: int, log_name: str) -> None:
    """The child's loop: receive ``(function, args, log context)``, answer ``(kind, payload)``;
    it logs as its parent does, with the context of the call it runs."""
    configure_logging(log_name)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    while True:
        try:
            function, args, context = connection.recv()
        except EOFError:
            return
        try:
            with log_context(**context):
                answer: tuple[str, Any] = ("ok", function(*args))
        except VisionFnError as error:
            answer = ("error", (type(error), error.detail))
        except Exception as error:  # reported to the caller, which decides
            answer = ("bug", f"{type(error).__name__}: {error}")
        connection.send(answer)


class _Child:
    def __init__(self) -> None:
        self.connection, child_end = _SPAWN.Pipe()
        self.process = _SPAWN.Process(target=_serve, args=(child_end, os.getpid(), function_name() or "work"), daemon=True)
        self.process.start()
        child_end.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.connection.close()


class WorkProcesses:
    """A pool of warm children; as many run at once as calls are made (the platform bounds that:
    the event source's concurrency), at most ``max_idle`` wait for the next call.

    ``warm``: a module the work needs (its imports are most of a child's start). A server process
    forked from this one (gunicorn's worker, and the worker it starts again after a crash) makes
    ``max_idle`` children ahead of time with that module imported, one after another, so that
    the first calls after a start or a restart (as many as the function's concurrency) do not
    each spawn a cold one; with no fork (Lambda) the first call makes its child."""

    def __init__(self, max_idle: int = 2, warm: str | None = None) -> None:
        self.max_idle = max_idle
        self.warm = warm
        self._reset()
        if warm:
            os.register_at_fork(after_in_child=self._forked)

    def _reset(self) -> None:
        self._idle: list[_Child] = []
        self._changed = threading.Condition()  # guards _idle and _warming
        self._warming = 0  # warm children being made
        self._owner = os.getpid()

    def _forked(self) -> None:
        """In a process just forked from this one: the children and the lock were the parent's."""
        self._reset()
        self.prewarm()

    def prewarm(self) -> None:
        """Make ``max_idle`` children with ``warm`` imported, in the background; they join the idle
        ones (a call that comes meanwhile waits for the next of them rather than making a cold one)."""
        if not self.warm:
            return
        with self._changed:
            self._warming += self.max_idle
        threading.Thread(target=self._make_warm_children, args=(self.warm,), name="prewarm", daemon=True).start()

    def _make_warm_children(self, module: str) -> None:
        """One after another: side by side they took the cores from the function's own start (its
        first invocation waited past its message's visibility)."""
        for _ in range(self.max_idle):
            child = None
            try:
                child = self._warm_child(module)
            finally:
                self._give_back(child, warmed=True)

    def _warm_child(self, module: str) -> _Child | None:
        child = _Child()
        try:
            child.connection.send((import_module, (module,), {}))
            if not child.connection.poll(PREWARM_SECONDS):
                raise TimeoutError(f"importing {module} took over {PREWARM_SECONDS} s")
            kind, _payload = child.connection.recv()
            if kind != "ok":
                raise RuntimeError(f"importing {module}: {kind}")
        except Exception as error:  # an optimisation: the first call makes its own child
            log.warning("no warm work process (%s)", error)
            child.kill()
            return None
        return child

    def run(
        self,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        deadline: float,
        timeout_message: str,
        tick: Callable[[], None] = lambda: None,
        tick_seconds: float = 1.0,
    ) -> Any:
        """``function(*args)`` in a child; ``function`` must be importable (module level)."""
        child = self._take(tick, tick_seconds, deadline, timeout_message)
        try:
            child.connection.send((function, args, current_log_context()))
            while not child.connection.poll(max(0.0, min(tick_seconds, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    raise TimedOut(timeout_message)
                tick()
            kind, payload = child.connection.recv()
        except (EOFError, OSError) as error:
            code = child.process.exitcode
            child.kill()
            raise WorkCrashed(f"the work process died (exit code {code})") from error
        except BaseException:
            child.kill()
            raise
        self._give_back(child)
        if kind == "ok":
            return payload
        if kind == "error":
            error_class, detail = payload
            raise _rebuild(error_class, detail)
        raise WorkFailed(payload)

    def _take(self, tick: Callable[[], None], tick_seconds: float, deadline: float, timeout_message: str) -> _Child:
        """An idle child that is alive; while warm ones are being made and none is idle, the first
        of them, running ``tick`` meanwhile as while the work runs (the lease's heartbeat: waiting
        for a warm child must not let the job's message come back), until the call's ``deadline``
        (``TimedOut``); else a new one."""
        while True:
            with self._changed:
                if self._owner != os.getpid():  # inherited through a fork: those children are not ours
                    self._idle, self._warming, self._owner = [], 0, os.getpid()
                while self._idle:
                    child = self._idle.pop()
                    if child.process.is_alive():
                        return child
                if not self._warming:
                    break
                if time.monotonic() >= deadline:
                    raise TimedOut(timeout_message)
                wait = min(tick_seconds, deadline - time.monotonic())
                if self._changed.wait_for(lambda: self._idle or not self._warming, timeout=max(0.0, wait)):
                    continue
            tick()
        return _Child()

    def _give_back(self, child: _Child | None, warmed: bool = False) -> None:
        """``child`` joins the idle ones if there is room, else it is killed. ``warmed``: it is (or,
        None, it failed to be) one of the warm children being made, counted off in the same step,
        so that a call waiting for one sees either it or that none is coming."""
        with self._changed:
            self._warming -= warmed
            if child is not None and len(self._idle) < self.max_idle:
                self._idle.append(child)
                child = None
            self._changed.notify_all()
        if child is not None:
            child.kill()


def _rebuild(error_class: type[VisionFnError], detail: Any) -> VisionFnError:
    """The child's error again in this process: same class (so the same status), same detail."""
    error = error_class.__new__(error_class)
    VisionFnError.__init__(error, detail)
    return error
