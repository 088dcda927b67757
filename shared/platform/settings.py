"""The one settings object: every environment variable the project reads is declared here."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, IPvAnyNetwork, PositiveFloat, SecretStr
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

    # --- input limits ------------------------------------------------------------------------
    max_image_pixels: int = Field(50_000_000, gt=0, description="Images above this pixel count get 413.")
    max_upload_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="The largest file a route takes (through POST /api/v1/uploads when it is "
        "over the synchronous limit) and, with `lambda_limits` off, the largest request body."
    )
    lambda_limits: bool = Field(
        True, description="Refuse what a Lambda function behind an HTTP API would (request and answer bodies over "
        f"{LAMBDA_SYNC_BODY_BYTES} bytes: 413; no answer within {API_GATEWAY_TIMEOUT_SECONDS} s: 504). Turn off for "
        "deployments that have no such limits (Cloud Run, a container): `max_upload_bytes` and the functions' "
        "Timeout then hold."
    )
    body_read_timeout: float = Field(
        10, gt=0, description="The gateway answers 408 when a request body stalls this long (slow clients cannot hold a function)."
    )
    request_read_timeout: float = Field(
        10, gt=0, description="A function drops a client whose request does not arrive this many seconds after "
        "its last byte (slow clients cannot hold its threads)."
    )
    thumbnail_max_side: int = Field(256, ge=16, le=4096, description="Longest side of a thumbnail, px.")
    task_lease_seconds: int = Field(
        20,
        ge=1,
        description="A worker's lease on its task and its job message: renewed every third of it while the "
        "work runs, so a dead worker's job is redelivered (and its task reclaimed) within this many seconds.",
    )
    function_timeout: int = Field(
        60,
        ge=1,
        description="A function's Timeout when an invocation carries no deadline (the event bridge and the "
        "cloud entry pass the real one in `x-amzn-lambda-context`).",
    )

    # --- face privacy -------------------------------------------------------------------------
    model_dir: Path = Field(PROJECT_ROOT / ".models", description="Cached model files (fetched by `make install`).")
    face_detector: Literal["fused", "combined", "centerface", "retinaface", "mediapipe"] = Field(
        "fused", description="Detector used when a request names none."
    )
    face_max_input_side: int = Field(
        1024, ge=64, le=8192,
        description="Longer side (px) an image is scaled down to before the face networks (CenterFace, "
        "RetinaFace) see it: larger finds smaller faces in big images, and costs time with its square.",
    )
    face_output_quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality of anonymized images.")
    face_video_max_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="Videos (POST /api/v1/faces/video, inbox/faces/) above this size get 413."
    )
    face_video_max_seconds: float = Field(120.0, gt=0, description="Videos lasting longer than this get 413.")
    face_video_max_pixels: int = Field(
        1920 * 1080, gt=0, description="Videos whose frames have more pixels than this get 413."
    )
    face_video_track_frames: int = Field(
        5, ge=0, le=100, description="Frames a face stays covered (moving with its track) after the detector lost it."
    )
    face_video_queue_url: str | None = Field(
        None, description="SQS job queue of the face_video function (set by template.yaml; the face inbox sends videos there)."
    )
    face_video_inbox_owner: str = Field(
        "inbox", description="Owner of the video tasks that inbox/faces/ uploads create."
    )

    # --- defect inspection ----------------------------------------------------------------------
    defect_model_path: Path | None = Field(
        None,
        description="An operator's own ONNX defect model (contract in shared/defects/model/MODEL_CARD.md); "
        "unset: the shipped NEU-DET model.",
    )

    # --- matching -----------------------------------------------------------------------------
    job_queue_url: str | None = Field(
        None, description="SQS queue a matching function hands its tasks to (set per function by template.yaml)."
    )
    chain_state_machine_arn: str | None = Field(
        None, description="The chain-matching state machine (set for the chain function by template.yaml)."
    )
    chain_step_queues: dict[str, str] = Field(
        default_factory=dict,
        description="JSON object: tool -> URL of its job queue, where the state machine sends chain steps "
        "(set for the chain function by template.yaml).",
    )
    chain_step_heartbeat_seconds: int = Field(
        60, ge=2,
        description="A chain step fails (and the chain goes on) when its worker sends no heartbeat for this long, "
        "waiting in the queue included; a working worker heartbeats every third of `task_lease_seconds`.",
    )
    chain_step_timeout_seconds: int = Field(
        900, ge=2, description="The longest a chain step may take, queue wait included, before it fails."
    )
    surface_max_points: int = Field(
        500_000, ge=1, description="PLY files with more vertices than this get 413 (parsing memory and time)."
    )
    surface_max_model_samples: int = Field(
        1500,
        ge=10,
        description="Surface tasks whose model keeps more points than this after sampling end in `error` "
        "(PPF training time grows steeply: ~3 s at 760 points, ~21 s at 1340, ~140 s at 2270 on 2 cores).",
    )

    platform_token: str | None = Field(
        None,
        description="Locally: the secret the runner makes at each start; the gateway and the event bridge send it "
        "and a function refuses invocations without it (401). Unset in the cloud, where functions have no URL.",
    )
    key_cache_seconds: float = Field(
        30, ge=0, description="How long the gateway remembers a verified API key (a revoked key stops working within this)."
    )

    # --- defect inspection and its data service ------------------------------------------------
    defect_max_batch_images: int = Field(
        32, ge=1, le=1000, description="POST /api/detect takes at most this many `images` per request (more: 413)."
    )
    defect_max_batch_pixels: int = Field(
        100_000_000, ge=1, description="The images of one POST /api/detect may hold at most this many pixels in all "
        "(read from their headers before any is decoded; more: 413). Each image is also held to `max_image_pixels`.",
    )
    defect_inbox_owner: str = Field(
        "local", min_length=1, max_length=64,
        description="Owner of the records of objects put straight under `inbox/defects/` (those under "
        "`inbox/defects/<owner>/` belong to `<owner>`).",
    )
    analysis_llm_url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible API (`.../v1`) that writes the analysis narrative; "
        "unset: the analysis is the computed summary only.",
    )
    analysis_llm_key: SecretStr | None = Field(
        None, description="Bearer key of that API (never logged or returned; unset for servers without keys)."
    )
    analysis_llm_model: str | None = Field(None, description="Model name sent to that API (needed with the URL).")
    analysis_llm_timeout: float = Field(
        10, gt=0, le=120, description="Seconds the analysis waits for the narrative before answering without it."
    )

    # --- webhooks ----------------------------------------------------------------------------
    webhook_timeout_seconds: float = Field(
        10, gt=0, le=60, description="One delivery attempt (resolving, connecting, sending, reading the answer) "
        "ends within this many seconds; past it the attempt failed and is retried later."
    )
    webhook_allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description='JSON list of CIDRs webhooks may reach although they are not public (e.g. `["127.0.0.0/8", '
        '"::1/128"]` for receivers on this machine; the test platform sets that). Unset: public addresses only.',
    )
    webhook_retry_delays: list[PositiveFloat] = Field(
        [5, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000], min_length=1, max_length=50,
        description="JSON list: seconds from a failed delivery attempt to the next (each +-15 % jitter); a "
        "delivery failing after the last is `failed`. Default: 5 s, 5 min, 30 min, 2 h, 5 h, 4 x 10 h (~2 days).",
    )
    webhook_disable_after_seconds: float = Field(
        3 * 24 * 3600, gt=0, description="A hook whose delivery attempts have all failed for this long is disabled "
        "(`disabled_reason`); a successful ping or redelivery enables it again. Default 3 days."
    )
    webhook_response_excerpt_bytes: int = Field(
        1024, ge=0, le=65536, description="Bytes of a receiver's answer read and kept in the delivery log."
    )
    webhook_max_per_owner: int = Field(20, ge=1, le=10000, description="Webhooks one owner may register (more: 400).")

    # --- testing -----------------------------------------------------------------------------
    fault_injection: bool = Field(
        False,
        description="Honour the `visionfn-fail-attempts` object metadata (tests only): the "
        "event handler fails while the message's receive count is at most that number.",
    )

    # --- local runner (infra/) ----------------------------------------------------------------
    run_dir: Path = Field(PROJECT_ROOT / ".run", description="Logs, state and LocalStack data of `make up`.")
    stack_name: str = Field("visionfn-local", description="CloudFormation stack deployed to LocalStack.")
    localstack_port: int = Field(4566, description="LocalStack port on 127.0.0.1.")
    gateway_port: int = Field(8888, description="Gateway port on 127.0.0.1.")
    function_base_port: int = Field(8100, description="First port of the function processes.")
    queue_visibility_timeout: int = Field(
        20, ge=1, description="The template's `QueueVisibilityTimeout` locally: visibility timeout of the queues and "
        "the workers' lease, s."
    )
    max_receive_count: int = Field(5, ge=1, description="Deliveries before a message goes to its DLQ.")
    bridge_wait_seconds: int = Field(5, ge=1, le=20, description="Long-poll wait of the event bridge, s.")
    local_timeout_seconds: int | None = Field(
        None, ge=1, description="Caps every function's Timeout locally (tests of timeouts); unset: the template's."
    )
    local_schedule_seconds: float | None = Field(
        None, gt=0, description="Runs every Schedule event this often locally instead of its rate (tests)."
    )
    outbox_grace_seconds: float = Field(
        10, ge=0, description="The sweeper sends outbox messages left unsent for longer than this (their sender died)."
    )
    log_level: str = Field("INFO", description="Python log level of every process.")


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
