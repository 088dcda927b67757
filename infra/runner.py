"""The whole local platform in one command.

``python -m infra.runner up``     start LocalStack, deploy template.yaml, migrate, start every
                                  function, the event bridge and the gateway; Ctrl-C stops all.
                                  With VISIONFN_RUNTIME=container (`make up RUNTIME=container`)
                                  each function runs in its own container, from its image of
                                  `make images`, on the host network: same ports, environment,
                                  logs and supervision as a process.
``python -m infra.runner down``   stop a running ``up`` (from another terminal).
``python -m infra.runner status`` what is running, and the platform's health.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import ValidationError

from infra.containers import ContainersUnavailable, check_can_run, container_command, container_name, running_containers
from infra.event_bridge import Bindings, QueueBinding, ScheduleBinding
from infra.gateway import GatewayRoute
from infra.metrics import function_summary
from infra.processes import ChildProcess, PortInUse, describe_exit, ensure_port_free, port_accepts
from infra.settings import RunnerSettings, get_runner_settings
from infra.stack import (
    LOCAL_CREDENTIALS,
    StackError,
    deploy_template,
    localstack_command,
    localstack_environment,
    localstack_url,
    wait_for_localstack,
)
from infra.template import FunctionSpec, StackContext, function_specs, load_template
from shared.faces.settings import get_face_settings
from shared.platform.db.migrate import upgrade
from shared.platform.keys import ApiKeys
from shared.platform.logs import configure_logging
from shared.platform.settings import PROJECT_ROOT
from shared.platform.storage import aws_client

log = logging.getLogger("visionfn.runner")


class StartupError(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalFunction:
    spec: FunctionSpec
    port: int
    timeout: int  # the template's Timeout (capped by VISIONFN_LOCAL_TIMEOUT_SECONDS when set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class PlatformState:
    """Written to ``<run_dir>/state.json`` once the platform is ready."""

    runner_pid: int
    gateway_url: str
    localstack_url: str
    stack_name: str
    bucket: str
    database_url: str
    functions: dict[str, str]
    outputs: dict[str, str]
    ready_seconds: float
    runtime: str  # process | container: how the functions run
    processes: dict[str, dict[str, object]]  # name -> pid, restarts, last_exit, container, listening_after (kept current)


def local_api_key(settings: RunnerSettings) -> Path:
    """``<run_dir>/api-key`` (mode 0600) holds a key of the owner ``local``: made on the first
    start, kept while it still works."""
    path = settings.run_dir / "api-key"
    keys = ApiKeys(settings.database_url)
    if path.exists() and keys.owner_of(path.read_text().strip()):
        return path
    _record, key = keys.create("local", "made by make up")
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(key + "\n")
    return path


def state_path(settings: RunnerSettings) -> Path:
    return settings.run_dir / "state.json"


class Platform:
    def __init__(self, settings: RunnerSettings) -> None:
        # the runner itself talks to LocalStack, with its throwaway credentials
        self.settings = settings.model_copy(update={"aws_endpoint_url": localstack_url(settings)})
        os.environ.update(LOCAL_CREDENTIALS)
        self.children: list[ChildProcess] = []
        self.stopping = threading.Event()
        self.platform_token = secrets.token_urlsafe(32)  # only the gateway and the bridge invoke functions
        self.listening_after: dict[str, float] = {}  # seconds from a child's start to its port accepting

    # --- start-up ------------------------------------------------------------------------------
    def up(self) -> PlatformState:
        started = time.monotonic()
        settings = self.settings
        functions = [
            LocalFunction(spec, settings.function_base_port + index, min(spec.timeout, settings.local_timeout_seconds or spec.timeout))
            for index, spec in enumerate(spec for spec in function_specs(load_template()) if spec.triggered)
        ]
        in_containers = settings.runtime == "container"
        if in_containers:
            self._check_containers_can_run(functions)
        ensure_port_free(settings.localstack_port, "LocalStack")
        ensure_port_free(settings.gateway_port, "the gateway")
        for function in functions:
            ensure_port_free(function.port, f"function {function.spec.name}")
        state_path(settings).unlink(missing_ok=True)

        localstack = self._start("localstack", localstack_command(), {**os.environ, **localstack_environment(settings)})
        self._say(f"migrating {_redact(settings.database_url)}")
        upgrade(settings.database_url)
        self.key_file = local_api_key(settings)
        try:
            wait_for_localstack(settings, timeout=90, alive=lambda: localstack.exited() is None)
        except StackError as error:
            raise StartupError(f"{error}\n{localstack.log_tail()}") from error
        self._say(f"LocalStack ready at {localstack_url(settings)}; deploying template.yaml")
        stack = deploy_template(settings)

        env = self._function_environment()
        for function in functions:
            if in_containers:
                self._start_container(function, self._resolved_env(env, function, stack.context))
            else:
                self._start(function.spec.name, self._function_command(function), self._resolved_env(env, function, stack.context))
        self._wait_for_ports({function.spec.name: function.port for function in functions}, timeout=120 if in_containers else 60)

        bindings = Bindings(self._queue_bindings(functions, stack.context), self._schedule_bindings(functions))
        bindings_file = settings.run_dir / "bridge.json"
        bindings_file.write_text(bindings.to_json())
        routes = [
            GatewayRoute(route.method, route.path, function.spec.name, function.url, settings.sync_timeout(function.timeout), route.public)
            for function in functions
            for route in function.spec.routes
        ]
        routes_file = settings.run_dir / "routes.json"
        routes_file.write_text(json.dumps([asdict(route) for route in routes], indent=2))
        python = sys.executable
        self._start("event_bridge", [python, "-m", "infra.event_bridge", str(bindings_file)], env)
        self._start("gateway", [python, "-m", "infra.gateway", str(routes_file), str(settings.gateway_port)], env)
        self._wait_for_ports({"gateway": settings.gateway_port})

        state = PlatformState(
            runner_pid=os.getpid(),
            gateway_url=f"http://127.0.0.1:{settings.gateway_port}",
            localstack_url=localstack_url(settings),
            stack_name=settings.stack_name,
            bucket=stack.outputs["BucketName"],
            database_url=_redact(settings.database_url),
            functions={function.spec.name: function.url for function in functions},
            outputs=stack.outputs,
            ready_seconds=round(time.monotonic() - started, 2),
            runtime=settings.runtime,
            processes={},
        )
        self.state = state
        self._write_state()
        return state

    def _write_state(self) -> None:
        """state.json, with every process's pid and restarts (what `make status` shows)."""
        self.state.processes = {
            child.name: {
                "pid": child.process.pid,
                "restarts": child.restarts,
                "last_exit": child.last_exit,
                "container": child.container,
                "listening_after": self.listening_after.get(child.name),
            }
            for child in self.children
        }
        path = state_path(self.settings)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self.state), indent=2))
        temporary.replace(path)

    def _start(self, name: str, command: list[str], env: dict[str, str], container: str | None = None) -> ChildProcess:
        child = ChildProcess.start(name, command, env, self.settings.log_dir, container=container)
        self.children.append(child)
        return child

    # --- functions in containers -----------------------------------------------------------------
    def container_name(self, function: str) -> str:
        return container_name(self.settings, function)

    def _check_containers_can_run(self, functions: list[LocalFunction]) -> None:
        state = state_path(self.settings)
        previous_alive = state.exists() and _alive(json.loads(state.read_text())["runner_pid"])
        try:
            check_can_run(self.settings, [function.spec for function in functions], previous_alive, self._say)
        except ContainersUnavailable as error:
            raise StartupError(str(error)) from error

    def container_command(self, function: LocalFunction, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """The ``podman run`` of ``function`` and the variables it passes on (infra/containers.py)."""
        names = {*self._platform_variables(), *function.spec.environment, "DATABASE_URL", "VISIONFN_FUNCTION_TIMEOUT"}
        return container_command(self.settings, function.spec.name, function.port, env, names)

    def _start_container(self, function: LocalFunction, env: dict[str, str]) -> ChildProcess:
        command, variables = self.container_command(function, env)
        return self._start(function.spec.name, command, {**os.environ, **variables}, container=self.container_name(function.spec.name))

    def _platform_variables(self) -> dict[str, str]:
        """What the runner gives every function besides the template's variables."""
        return {
            "VISIONFN_PLATFORM_TOKEN": self.platform_token,
            **LOCAL_CREDENTIALS,
            "AWS_ENDPOINT_URL": localstack_url(self.settings),
            "AWS_REGION": self.settings.aws_region,
            "AWS_DEFAULT_REGION": self.settings.aws_region,
            "PYTHONUNBUFFERED": "1",
        }

    def _function_environment(self) -> dict[str, str]:
        """What every local process gets besides the template's variables."""
        return {**os.environ, **self._platform_variables(), "PYTHONPATH": str(PROJECT_ROOT)}

    def _resolved_env(self, base: dict[str, str], function: LocalFunction, context: StackContext) -> dict[str, str]:
        env = {**base, **{key: context.resolve(value) for key, value in function.spec.environment.items()}}
        env["DATABASE_URL"] = self.settings.database_url  # the template's is the cloud's secret
        env["VISIONFN_FUNCTION_TIMEOUT"] = str(function.timeout)
        env.pop("PORT", None)
        return env

    def _function_command(self, function: LocalFunction) -> list[str]:
        return [
            sys.executable,
            "-m",
            "infra.serve",  # functions-framework's app and gunicorn, with read timeouts
            f"--source={function.spec.source}",
            f"--target={function.spec.target}",
            "--host=127.0.0.1",
            f"--port={function.port}",
        ]

    def _queue_bindings(self, functions: list[LocalFunction], context: StackContext) -> list[QueueBinding]:
        sqs = aws_client("sqs", self.settings)
        bindings = []
        for function in functions:
            for trigger in function.spec.queues:
                url = context.physical_ids[trigger.queue]
                arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                bindings.append(
                    QueueBinding(
                        function=function.spec.name,
                        queue_url=url,
                        queue_arn=arn,
                        endpoint=function.url,
                        batch_size=trigger.batch_size,
                        timeout=function.timeout,
                        report_batch_item_failures=trigger.report_batch_item_failures,
                        concurrency=trigger.concurrency,
                    )
                )
        return bindings

    def _schedule_bindings(self, functions: list[LocalFunction]) -> list[ScheduleBinding]:
        return [
            ScheduleBinding(
                function=function.spec.name,
                name=trigger.name,
                endpoint=function.url,
                every_seconds=self.settings.local_schedule_seconds or trigger.every_seconds,
                timeout=function.timeout,
            )
            for function in functions
            for trigger in function.spec.schedules
        ]

    def _wait_for_ports(self, ports: dict[str, int], timeout: float = 60) -> None:
        """Until each listens; how long each took from its start is kept (state.json: listening_after)."""
        deadline = time.monotonic() + timeout
        waiting = dict(ports)
        started = {child.name: child.started_at for child in self.children}
        while waiting:
            self.raise_if_a_child_died()
            for name, port in list(waiting.items()):
                if port_accepts(port):
                    self.listening_after[name] = round(time.monotonic() - started[name], 2)
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                raise StartupError(f"not listening after {timeout:.0f} s: {waiting}")
            time.sleep(0.05)

    # --- supervision -----------------------------------------------------------------------------
    def raise_if_a_child_died(self) -> None:
        """During start-up any death is fatal: the platform is not there yet to keep serving."""
        for child in self.children:
            code = child.exited()
            if code is not None:
                raise StartupError(
                    f"{child.name} (pid {child.process.pid}) {describe_exit(code)}; log {child.log_path}:\n{child.log_tail()}"
                )

    def supervise(self) -> None:
        """Restart what dies (with backoff) while the rest keeps serving, until asked to stop.
        LocalStack alone is fatal: the bucket, queues and messages it held are gone with it."""
        while not self.stopping.wait(0.2):
            changed = False
            for child in self.children:
                code = child.exited()
                if code is not None and child.restart_at is None:
                    if child.name == "localstack":
                        raise StartupError(
                            f"LocalStack (pid {child.process.pid}) {describe_exit(code)}; its state is lost, "
                            f"so the platform stops. Log {child.log_path}:\n{child.log_tail()}"
                        )
                    delay = child.schedule_restart()
                    self._say(
                        f"{child.name} (pid {child.process.pid}) {child.last_exit}; restarting in {delay:.1f} s "
                        f"(restart {child.restarts + 1}); log {child.log_path}"
                    )
                    changed = True
                if child.restart_if_due():
                    self._say(f"{child.name} restarted (pid {child.process.pid}, restart {child.restarts})")
                    changed = True
            if changed:
                self._write_state()

    def down(self) -> None:
        containers_told = False
        for child in reversed(self.children):
            if child.container and not containers_told:  # they stop together: each takes a second or two
                for container in self.children:
                    if container.container:
                        container.terminate()
                containers_told = True
            child.stop()
        state_path(self.settings).unlink(missing_ok=True)

    def _say(self, message: str) -> None:
        log.info(message)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _redact(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def command_up(settings: RunnerSettings) -> int:
    configure_logging("runner")
    platform = Platform(settings)
    signal.signal(signal.SIGTERM, lambda *_: platform.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: platform.stopping.set())
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        state = platform.up()
        log.info(
            'ready in %s s: gateway %s (try: curl %s/health); API key in %s (curl -H "Authorization: Bearer $(cat %s)" ...); '
            "logs in %s/; webhooks: receivers on this machine (127.0.0.1, ::1) allowed, the platform's own ports never; "
            "Ctrl-C (or `make down`) stops everything",
            state.ready_seconds,
            state.gateway_url,
            state.gateway_url,
            platform.key_file,
            platform.key_file,
            settings.log_dir,
            extra={"gateway": state.gateway_url, "localstack": state.localstack_url, "bucket": state.bucket, "functions": state.functions},
        )
        platform.supervise()
        log.info("stopping")
        return 0
    except (StartupError, StackError, PortInUse) as error:
        log.error("%s", error)
        return 1
    finally:
        platform.down()


def command_down(settings: RunnerSettings) -> int:
    path = state_path(settings)
    if not path.exists():
        print("[visionfn] nothing is running (no state file)")
        return 0
    pid = json.loads(path.read_text())["runner_pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        print("[visionfn] the runner was already gone; state cleared")
        return 0
    for _ in range(200):
        if not path.exists():
            print("[visionfn] stopped")
            return 0
        time.sleep(0.1)
    print(f"[visionfn] runner {pid} did not stop within 20 s", file=sys.stderr)
    return 1


def command_status(settings: RunnerSettings) -> int:
    path = state_path(settings)
    if not path.exists():
        print("[visionfn] not running")
        return 3
    state = json.loads(path.read_text())
    processes = state.pop("processes", {})
    print(json.dumps(state, indent=2))
    running = running_containers([process["container"] for process in processes.values() if process.get("container")])
    print(f"{'process':<16} {'pid':>8} {'restarts':>8}  {'last exit':<32} container")
    for name, process in processes.items():
        container = process.get("container")
        where = f"{container} ({running.get(container, 'not running')})" if container else "-"
        print(f"{name:<16} {process['pid']:>8} {process['restarts']:>8}  {process['last_exit'] or '-':<32} {where}")
    print(f"\n{'function':<16} {'requests':>8} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'restarts':>8}")
    summary = {row["function"]: row for row in function_summary(settings.log_dir)}
    for name in sorted(set(summary) | {name for name in processes if name not in ("localstack", "gateway", "bridge")}):
        row = summary.get(name, {})
        restarts = processes.get(name, {}).get("restarts", 0)
        p50, p95 = row.get("p50_ms", "-"), row.get("p95_ms", "-")
        print(f"{name:<16} {row.get('requests', 0):>8} {row.get('errors', 0):>7} {p50:>8} {p95:>8} {restarts:>8}")
    try:
        with urllib.request.urlopen(f"{state['gateway_url']}/health", timeout=5) as response:  # noqa: S310
            print(response.read().decode())
    except OSError as error:
        print(f"[visionfn] health check failed: {error}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    commands = {"up": command_up, "down": command_down, "status": command_status}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    try:
        settings = get_runner_settings()
        get_face_settings()  # the deploy passes its inbox_hide as the stack's FaceInboxHide
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}" for problem in error.errors())
        print(f"[visionfn] a setting is wrong ({error.title}): {problems}", file=sys.stderr)
        return 2
    return commands[sys.argv[1]](settings)


if __name__ == "__main__":
    sys.exit(main())
