"""Functions in containers (`make up RUNTIME=container`): whether they can run here, the
``podman run`` of each, and which are running."""

from __future__ import annotations

import resource
import shutil
import subprocess
from collections.abc import Callable

from infra.images import FunctionImage, ImageError, image_name, out_of_date
from infra.processes import PODMAN
from infra.settings import RunnerSettings
from infra.template import FunctionSpec


class ContainersUnavailable(RuntimeError):
    """Something the container runtime needs is missing (podman, a database server, an image)."""


#: Variables that name a path on this machine: a container has its own (its image's models)
HOST_PATH_SETTINGS = frozenset({"VISIONFN_MODEL_DIR", "VISIONFN_RUN_DIR"})
#: runc on this machine kind refuses a process limit above 32768 (and podman run needs one given)
CONTAINER_MAX_PROCESSES = 16384


def container_name(settings: RunnerSettings, function: str) -> str:
    """``<stack>-<function>``: platforms of other stacks (tests beside `make up`) keep theirs."""
    return f"{settings.stack_name}-{function}"


def check_can_run(settings: RunnerSettings, functions: list[FunctionSpec], previous_runner_alive: bool, say: Callable[[str], None]) -> None:
    """podman, a database the containers reach, every image (a stale one is named); containers
    of this stack that a runner killed without its `down` left behind are removed."""
    if not shutil.which(PODMAN[0]):
        raise ContainersUnavailable("VISIONFN_RUNTIME=container needs podman (apt-get install podman runc)")
    if settings.database_url.startswith("sqlite"):
        raise ContainersUnavailable(
            "VISIONFN_RUNTIME=container needs a database server the containers reach on 127.0.0.1 (Postgres: "
            "DATABASE_URL=postgresql+psycopg://...); the SQLite file is this machine's, not theirs"
        )
    images = [FunctionImage(function.name, function.target) for function in functions]
    try:
        missing, stale = out_of_date(images)
    except ImageError as error:
        raise ContainersUnavailable(str(error)) from error
    if missing:
        raise ContainersUnavailable(f"no image {', '.join(missing)}: `make images` builds them (`make up RUNTIME=container` does first)")
    if stale:
        say(f"warning: {', '.join(stale)} built from other code than this checkout's; `make images` rebuilds them")
    if previous_runner_alive:
        return  # that runner's platform: the port checks report it
    leftovers = subprocess.run(
        [*PODMAN, "ps", "--all", "--quiet", "--filter", f"label=visionfn.stack={settings.stack_name}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if leftovers:
        say(f"removing {len(leftovers)} containers a stopped platform of {settings.stack_name} left")
        subprocess.run([*PODMAN, "rm", "--force", *leftovers], capture_output=True, check=False)


def container_command(
    settings: RunnerSettings, name: str, port: int, env: dict[str, str], platform_names: set[str]
) -> tuple[list[str], dict[str, str]]:
    """``podman run --rm`` in the foreground, a child like any other, and the variables it passes
    on: its image, the host network (the same port, on 127.0.0.1; LocalStack and the database on
    127.0.0.1), of ``env`` (what a process of it would get) the platform's variables, not this
    machine's (PATH, HOME, PYTHONPATH, paths of model files), a read-only file system but /tmp (as
    Lambda's), the image's non-root user. Values go by name (``--env NAME``) from podman's
    environment, so the platform token and the database's password stay out of `ps`."""
    variables = {
        key: value for key, value in env.items() if (key in platform_names or key.startswith("VISIONFN_")) and key not in HOST_PATH_SETTINGS
    }
    variables.update(HOST="127.0.0.1", PORT=str(port))
    open_files = resource.getrlimit(resource.RLIMIT_NOFILE)
    processes = [
        min(limit, CONTAINER_MAX_PROCESSES) if limit > 0 else CONTAINER_MAX_PROCESSES for limit in resource.getrlimit(resource.RLIMIT_NPROC)
    ]
    command = [
        *PODMAN, "run", "--rm", "--replace", "--name", container_name(settings, name), "--pull", "never",
        "--network", "host", "--read-only",
        "--ulimit", f"nofile={open_files[0]}:{open_files[1]}", "--ulimit", f"nproc={processes[0]}:{processes[1]}",
        "--label", f"visionfn.stack={settings.stack_name}", "--label", f"visionfn.function={name}",
        *(f"--env={key}" for key in sorted(variables)),
        image_name(name),
    ]  # fmt: skip
    return command, variables


def running_containers(names: list[str]) -> dict[str, str]:
    """Container name -> podman's status of it (``Up 3 minutes``), for those running."""
    if not names or not shutil.which(PODMAN[0]):
        return {}
    answer = subprocess.run([*PODMAN, "ps", "--format", "{{.Names}}\t{{.Status}}"], capture_output=True, text=True, check=False)
    statuses = dict(line.split("\t", 1) for line in answer.stdout.splitlines() if "\t" in line)
    return {name: statuses[name] for name in names if name in statuses}
