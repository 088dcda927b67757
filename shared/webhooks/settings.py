"""The webhook functions' settings: the platform's and their own (``VISIONFN_WEBHOOK_*``)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import Field, IPvAnyNetwork, PositiveFloat
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from shared.platform.settings import Settings
from shared.webhooks.addresses import LOOPBACK_NETWORKS, IPAddress, IPNetwork, PlatformServices

#: The runner gives each function a port from ``function_base_port`` up (18 functions today): so
#: many ports from there are the platform's.
FUNCTION_PORTS = 64
#: A database URL without a port: its server's default one.
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}


class WebhookSettings(Settings):
    """What the webhook functions read (webhooks, notifier)."""

    webhook_timeout_seconds: float = Field(
        10,
        gt=0,
        le=60,
        description="One delivery attempt (resolving, connecting, sending, reading the answer) "
        "ends within this many seconds; past it the attempt failed and is retried later.",
    )
    webhook_allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description='JSON list of CIDRs webhooks may reach although they are not public (e.g. `["10.0.0.0/8"]`). '
        "On the local stack (`VISIONFN_STAGE=local`) loopback (127.0.0.0/8, ::1) is reachable without it. "
        "The platform's own services and the cloud metadata service stay out of reach whatever it says.",
    )
    platform_ports: list[int] = Field(
        default_factory=list,
        description="JSON list of more ports of the platform's own services that no webhook reaches on an address "
        "that is not public, besides those the platform's settings name: the database's (`DATABASE_URL`), "
        "LocalStack's (`AWS_ENDPOINT_URL`) and, on the local stack, `VISIONFN_LOCALSTACK_PORT`, "
        f"`VISIONFN_GATEWAY_PORT` and {FUNCTION_PORTS} ports from `VISIONFN_FUNCTION_BASE_PORT` (the functions').",
    )
    webhook_retry_delays: list[PositiveFloat] = Field(
        [5, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000],
        min_length=1,
        max_length=50,
        description="JSON list: seconds from a failed delivery attempt to the next (each +-15 % jitter); a "
        "delivery failing after the last is `failed`. Default: 5 s, 5 min, 30 min, 2 h, 5 h, 4 x 10 h (~2 days).",
    )
    webhook_disable_after_seconds: float = Field(
        3 * 24 * 3600,
        gt=0,
        description="A hook whose delivery attempts have all failed for this long is disabled "
        "(`disabled_reason`); a successful ping or redelivery enables it again. Default 3 days.",
    )
    webhook_response_excerpt_bytes: int = Field(
        1024, ge=0, le=65536, description="Bytes of a receiver's answer read and kept in the delivery log."
    )
    webhook_max_per_owner: int = Field(20, ge=1, le=10000, description="Webhooks one owner may register (more: 400).")

    @property
    def is_local(self) -> bool:
        return self.stage == "local"

    def reachable_networks(self) -> list[IPNetwork]:
        """What hooks may reach besides public addresses: the allowed networks, and on the local
        stack loopback (receivers on this machine, as `stripe listen` users expect)."""
        return [*self.webhook_allowed_networks, *(LOOPBACK_NETWORKS if self.is_local else ())]

    def platform_services(self) -> PlatformServices:
        """The platform's own services, from the settings the runner (or the template) gives every
        function: no hook reaches them."""
        ports: dict[int, str] = {}
        endpoints: dict[tuple[IPAddress, int], str] = {}

        def add(host: str | None, port: int | None, name: str) -> None:
            if port is None:
                return
            try:
                address = ipaddress.ip_address((host or "").strip("[]"))
            except ValueError:
                address = None
            if address is not None and address.is_global:
                endpoints[(address, port)] = name
            else:  # this machine's, its network's, or a name: on every address that is not public
                ports[port] = name

        if self.is_local:
            for port in range(self.function_base_port, self.function_base_port + FUNCTION_PORTS):
                ports[port] = "function"
            ports[self.gateway_port] = "gateway"
            ports[self.localstack_port] = "LocalStack"
        for port in self.platform_ports:
            ports[port] = "service"
        if self.aws_endpoint_url:
            endpoint = urlsplit(self.aws_endpoint_url)
            try:
                add(endpoint.hostname, endpoint.port or {"https": 443}.get(endpoint.scheme, 80), "LocalStack")
            except ValueError:  # a port that is not a number: nothing listens there
                pass
        try:
            database = make_url(self.database_url)
        except ArgumentError:
            database = None
        if database is not None:
            add(database.host, database.port or DATABASE_PORTS.get(database.get_backend_name()), "database")
        return PlatformServices(ports, endpoints)


@lru_cache(maxsize=1)
def get_webhook_settings() -> WebhookSettings:
    """The process-wide settings of this domain (read once)."""
    return WebhookSettings()
