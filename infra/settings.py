"""The local runner's settings: the platform's and what only `make up` reads (no function does)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field

from shared.platform.settings import PROJECT_ROOT, Settings

#: How long a function's server keeps an idle connection open (gunicorn's ``keepalive``; its default
#: is 2 s). The platform's clients of the functions (the gateway, the event bridge) reuse a
#: connection only while it has been idle for less than ``REUSE_IDLE_SECONDS``: the client always
#: lets go first. Otherwise a request sent just as the server closed its idle connection is lost
#: (the bridge read it as the function dying, and spent one of the message's deliveries on it).
SERVER_KEEPALIVE_SECONDS = 75
REUSE_IDLE_SECONDS = 15


class RunnerSettings(Settings):
    """What infra/ reads to run the platform on this machine."""

    run_dir: Path = Field(PROJECT_ROOT / ".run", description="Logs, state and LocalStack data of `make up`.")
    stack_name: str = Field("visionfn-local", description="CloudFormation stack deployed to LocalStack.")
    runtime: str = Field(
        "process",
        pattern="^(process|container)$",
        description="How `make up` runs each function: `process` (a Python process of this checkout) or "
        "`container` (its image from `make images`, with podman, on the host network): `make up RUNTIME=container`.",
    )
    bridge_wait_seconds: int = Field(5, ge=1, le=20, description="Long-poll wait of the event bridge, s.")
    local_timeout_seconds: int | None = Field(
        None, ge=1, description="Caps every function's Timeout locally (tests of timeouts); unset: the template's."
    )
    local_schedule_seconds: float | None = Field(
        None, gt=0, description="Runs every Schedule event this often locally instead of its rate (tests)."
    )

    @property
    def log_dir(self) -> Path:
        """Where every process of the platform logs (``<name>.log``: one JSON object per line)."""
        return self.run_dir / "logs"


@lru_cache(maxsize=1)
def get_runner_settings() -> RunnerSettings:
    """The runner's settings (read once)."""
    return RunnerSettings()
