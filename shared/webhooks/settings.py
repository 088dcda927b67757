"""The webhook functions' settings: the platform's and their own (``VISIONFN_WEBHOOK_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, IPvAnyNetwork, PositiveFloat

from shared.platform.settings import Settings


class WebhookSettings(Settings):
    """What the webhook functions read (webhooks, notifier)."""

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


@lru_cache(maxsize=1)
def get_webhook_settings() -> WebhookSettings:
    """The process-wide settings of this domain (read once)."""
    return WebhookSettings()
