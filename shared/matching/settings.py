"""The matching functions' settings: the platform's and their own (chain, surface, job queue)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from shared.platform.settings import Settings


class MatchingSettings(Settings):
    """What the matching functions read (match_template, match_feature, match_surface, match_chain)."""

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
        60,
        ge=2,
        description="A chain step fails (and the chain goes on) when its worker sends no heartbeat for this long, "
        "waiting in the queue included; a working worker heartbeats every third of `task_lease_seconds`.",
    )
    chain_step_timeout_seconds: int = Field(
        900, ge=2, description="The longest a chain step may take, queue wait included, before it fails."
    )
    surface_max_points: int = Field(500_000, ge=1, description="PLY files with more vertices than this get 413 (parsing memory and time).")
    surface_max_model_samples: int = Field(
        1500,
        ge=10,
        description="Surface tasks whose model keeps more points than this after sampling end in `error` "
        "(PPF training time grows steeply: ~3 s at 760 points, ~21 s at 1340, ~140 s at 2270 on 2 cores).",
    )


@lru_cache(maxsize=1)
def get_matching_settings() -> MatchingSettings:
    """The process-wide settings of this domain (read once)."""
    return MatchingSettings()
