"""Port checks report clearly."""

import json
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


def _wait_for(condition, what: str, timeout: float = 10.0):
    """``condition()``'s first truthy value, polled until ``timeout`` seconds have passed."""
    import time

    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.01)
    return value


def test_a_child_that_dies_is_reported_with_its_log(tmp_path):
    import sys

    from infra.processes import ChildProcess
    from infra.runner import Platform, StartupError
    from infra.settings import RunnerSettings

    platform = Platform(RunnerSettings(run_dir=tmp_path))
    child = ChildProcess.start("broken", [sys.executable, "-c", "print('cannot import model'); raise SystemExit(3)"], {}, tmp_path)
    platform.children.append(child)
    _wait_for(lambda: "cannot import model" in child.log_tail(), "the child's output in its log")
    assert child.process.wait(10) == 3
    with pytest.raises(StartupError, match=r"broken \(pid \d+\) exited with code 3(.|\n)*cannot import model"):
        platform.raise_if_a_child_died()


def test_a_dead_child_is_restarted_with_backoff(tmp_path):
    import sys
    import time

    from infra.processes import FIRST_RESTART_DELAY, ChildProcess

    child = ChildProcess.start("flaky", [sys.executable, "-c", "raise SystemExit(7)"], {}, tmp_path)
    first_pid = child.process.pid
    child.process.wait(10)
    scheduled = time.monotonic()
    assert child.schedule_restart() == FIRST_RESTART_DELAY
    assert child.last_exit == "exited with code 7"
    assert not child.restart_if_due()  # not before its delay
    _wait_for(child.restart_if_due, "the restart after its delay", timeout=FIRST_RESTART_DELAY + 10)
    assert time.monotonic() - scheduled >= FIRST_RESTART_DELAY
    assert child.restarts == 1 and child.process.pid != first_pid
    child.process.wait(10)
    assert child.schedule_restart() == 2 * FIRST_RESTART_DELAY  # it died again at once: longer wait


def test_a_killed_child_says_which_signal(tmp_path):
    import sys

    from infra.processes import ChildProcess

    child = ChildProcess.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path)
    child.process.kill()
    child.process.wait(10)
    child.schedule_restart()
    assert child.last_exit == "killed by SIGKILL"
    child.stop()


def test_logs_are_readable_by_their_owner_only(tmp_path):
    import stat
    import sys

    from infra.processes import ChildProcess

    older = tmp_path / "older.log"
    older.write_text("from a start before\n")
    older.chmod(0o644)
    for name in ("new", "older"):
        script = "print('hello'); print('{\"message\": \"as is\"}')"
        child = ChildProcess.start(name, [sys.executable, "-c", script], {}, tmp_path)
        child.process.wait(10)
        child.output_copy.join(10)
        assert stat.S_IMODE((tmp_path / f"{name}.log").stat().st_mode) == 0o600, name
    first, hello, as_is = older.read_text().splitlines()
    assert first == "from a start before"
    assert json.loads(hello)["message"] == "hello" and json.loads(hello)["function"] == "older"  # plain output: a JSON line
    assert as_is == '{"message": "as is"}'  # a JSON line stays as written


# --- functions in containers (VISIONFN_RUNTIME=container) ------------------------------------------


def test_a_container_killed_by_a_signal_says_which():
    from infra.processes import describe_exit

    assert describe_exit(137, container=True) == "killed by SIGKILL (container exit status 137)"
    assert describe_exit(125, container=True) == "exited with code 125"  # podman's own failure
    assert describe_exit(137) == "exited with code 137"  # a process's status is what it says


def test_a_container_gets_the_platform_variables_not_this_machines(tmp_path):
    from infra.runner import LocalFunction, Platform
    from infra.settings import RunnerSettings
    from infra.template import FunctionSpec

    platform = Platform(
        RunnerSettings(run_dir=tmp_path, stack_name="visionfn-unit", database_url="postgresql+psycopg://user:secret@127.0.0.1:5432/db")
    )
    spec = FunctionSpec("ThumbnailFunction", "thumbnail", "handle", 60, environment={"VISIONFN_JOB_QUEUE_URL": "x", "PORT": "8080"})
    function = LocalFunction(spec, port=8123, timeout=60)
    machine = {"PATH": "/usr/bin", "HOME": "/root", "PYTHONPATH": "/repo", "VISIONFN_MODEL_DIR": "/repo/.models", "SSH_AUTH_SOCK": "/s"}
    env = {**machine, "VISIONFN_FAULT_INJECTION": "1", "VISIONFN_JOB_QUEUE_URL": "http://queue", **platform._platform_variables()}
    env["DATABASE_URL"] = platform.settings.database_url
    command, variables = platform.container_command(function, env)
    assert command[:3] == ["podman", "--runtime", "runc"] and command[-1] == "localhost/visionfn/thumbnail:latest"
    assert command[command.index("--name") + 1] == "visionfn-unit-thumbnail"
    assert {"--rm", "--read-only", "--replace"} <= set(command) and command[command.index("--network") + 1] == "host"
    assert [command[index + 1].split("=")[0] for index, part in enumerate(command) if part == "--ulimit"] == ["nofile", "nproc"]
    assert variables["HOST"] == "127.0.0.1" and variables["PORT"] == "8123"
    assert {"DATABASE_URL", "VISIONFN_PLATFORM_TOKEN", "AWS_ENDPOINT_URL", "VISIONFN_FAULT_INJECTION", "VISIONFN_JOB_QUEUE_URL"} <= set(
        variables
    )
    assert not set(machine) & set(variables)
    assert {f"--env={name}" for name in variables} <= set(command)
    assert not any("secret" in part or platform.platform_token in part for part in command)  # values go by name


def test_the_face_model_images_are_functions_of_the_template():
    from infra.images import FACE_MODEL_FUNCTIONS, FunctionImage, function_images, inputs_digest

    images = {image.function: image for image in function_images()}
    assert FACE_MODEL_FUNCTIONS <= set(images)
    assert images["face_process"].models == "faces" and images["thumbnail"].models == "none"
    digests = {inputs_digest(image, "base") for image in images.values()}
    assert len(digests) == len(images)  # each image its own inputs
    assert inputs_digest(FunctionImage("health", "handle"), "base") != inputs_digest(FunctionImage("health", "handle"), "other base")


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [("VISIONFN_FACE_INBOX_HIDE", "plates", "face_inbox_hide"), ("VISIONFN_RUNTIME", "bogus", "runtime")],
)
def test_make_up_refuses_a_wrong_setting_in_one_line_before_starting_anything(monkeypatch, capsys, variable, value, named):
    """A wrong VISIONFN_FACE_INBOX_HIDE used to stop `make up` with a traceback once LocalStack was up
    (the deploy reads it for the stack's FaceInboxHide)."""
    from infra import runner
    from tests.conftest import environment

    def started(_settings):
        raise AssertionError("the platform was started")

    monkeypatch.setattr(runner, "command_up", started)
    monkeypatch.setattr("sys.argv", ["runner", "up"])
    with environment(**{variable: value}):
        assert runner.main() == 2
    error = capsys.readouterr().err
    assert error.startswith("[visionfn] a setting is wrong") and f"{named}: " in error and len(error.splitlines()) == 1
