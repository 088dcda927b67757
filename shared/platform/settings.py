"""The one settings object: every environment variable the project reads is declared here."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: A synchronous Lambda invocation carries at most 6 MB each way, the event's JSON included, and
#: an HTTP API passes binary bodies base64-encoded in it: what is left for the raw body after
#: 16 KiB for the request's headers and context (an HTTP API takes at most 10 KiB of headers).
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
LAMBDA_SYNC_BODY_BYTES = (LAMBDA_PAYLOAD_BYTES - 16 * 1024) // 4 * 3
#: An HTTP API waits at most this long for its integration (then it answers 503/504).
API_GATEWAY_TIMEOUT_SECONDS = 30


class Settings(BaseSettings):
    """Configuration read from the environment (prefix ``VISIONFN_`` unless noted)."""

    model_config = SettingsConfigDict(env_prefix="VISIONFN_", extra="ignore", frozen=True)

    # --- platform -----------------------------------------------------------------------
    stage: str = Field("local", description="Deployment stage; `local` runs the functions as processes.")
    database_url: str = Field(
        f"sqlite:///{PROJECT_ROOT / '.run' / 'visionfn.sqlite3'}",
        validation_alias=AliasChoices("DATABASE_URL", "VISIONFN_DATABASE_URL"),
        description="SQLAlchemy URL of the database (Postgres in production and tests).",
    )
    bucket: str = Field("visionfn-local-data-000000000000", description="The one object-store bucket.")
    event_bus: str = Field("visionfn-local-bus", description="EventBridge bus for task-finished events.")
    queue_prefix: str = Field("visionfn-local-", description="Name prefix of the stack's queues (health).")
    aws_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL", "VISIONFN_AWS_ENDPOINT_URL"),
        description="S3/SQS/EventBridge endpoint (LocalStack, MinIO); unset for AWS itself.",
    )
    aws_region: str = Field(
        "us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="AWS region.",
    )

    platform_token: str | None = Field(
        None,
        description="Locally: the secret the runner makes at each start; the gateway and the event bridge send it "
        "and a function refuses invocations without it (401). Unset in the cloud, where functions have no URL.",
    )
    key_cache_seconds: float = Field(
        30, ge=0, description="How long the gateway remembers a verified API key (a revoked key stops working within this)."
    )

    # --- input limits ------------------------------------------------------------------------
    max_image_pixels: int = Field(50_000_000, gt=0, description="Images above this pixel count get 413.")
    max_upload_bytes: int = Field(
        64 * 1024 * 1024,
        gt=0,
        description="The largest file a route takes (through POST /api/v1/uploads when it is "
        "over the synchronous limit) and, with `lambda_limits` off, the largest request body.",
    )
    lambda_limits: bool = Field(
        True,
        description="Refuse what a Lambda function behind an HTTP API would (request and answer bodies over "
        f"{LAMBDA_SYNC_BODY_BYTES} bytes: 413; no answer within {API_GATEWAY_TIMEOUT_SECONDS} s: 504). Turn off for "
        "deployments that have no such limits (Cloud Run, a container): `max_upload_bytes` and the functions' "
        "Timeout then hold.",
    )
    body_read_timeout: float = Field(
        10, gt=0, description="The gateway answers 408 when a request body stalls this long (slow clients cannot hold a function)."
    )
    request_read_timeout: float = Field(
        10,
        gt=0,
        description="A function drops a client whose request does not arrive this many seconds after "
        "its last byte (slow clients cannot hold its threads).",
    )
    task_lease_seconds: int = Field(
        20,
        ge=1,
        description="A worker's lease on its task and its job message: renewed every third of it while the "
        "work runs (the message hidden for two leases, so a late heartbeat costs nothing), so a worker that stops "
        "without being seen to die has its job redelivered (and its task reclaimed) within twice this many seconds.",
    )
    function_timeout: int = Field(
        60,
        ge=1,
        description="A function's Timeout when an invocation carries no deadline (the event bridge and the "
        "cloud entry pass the real one in `x-amzn-lambda-context`).",
    )

    # --- testing -----------------------------------------------------------------------------
    fault_injection: bool = Field(
        False,
        description="Honour the `visionfn-fail-attempts` object metadata (tests only): the "
        "event handler fails while the message's receive count is at most that number.",
    )

    # --- where the local platform listens (functions refuse these as webhook targets) ---------
    localstack_port: int = Field(4566, description="LocalStack port on 127.0.0.1.")
    gateway_port: int = Field(8888, description="Gateway port on 127.0.0.1.")
    function_base_port: int = Field(8100, description="First port of the function processes.")
    max_receive_count: int = Field(5, ge=1, description="Deliveries before a message goes to its DLQ.")
    outbox_grace_seconds: float = Field(
        10, ge=0, description="The sweeper sends outbox messages left unsent for longer than this (their sender died)."
    )
    lost_job_seconds: float = Field(
        300,
        gt=0,
        description="The sweeper sends a task's job again when the task has waited this long without a worker "
        "and its queue, dead letters included, holds no message at all (the job's message was lost: deleted, purged).",
    )
    log_level: str = Field("INFO", description="Python log level of every process.")
    log_format: Literal["json", "text"] = Field(
        "json", description="`json`: one JSON object per log line (as CloudWatch reads it); `text`: plain lines for a terminal."
    )
    metrics: bool = Field(True, description="Write metrics as CloudWatch Embedded Metric Format log lines.")

    @property
    def sync_body_bytes(self) -> int:
        """The largest request or answer body of a synchronous (HTTP) invocation."""
        return min(LAMBDA_SYNC_BODY_BYTES, self.max_upload_bytes) if self.lambda_limits else self.max_upload_bytes

    def sync_timeout(self, function_timeout: int) -> int:
        """How long an HTTP route waits for its function."""
        return min(function_timeout, API_GATEWAY_TIMEOUT_SECONDS) if self.lambda_limits else function_timeout


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
