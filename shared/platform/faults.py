"""Fault injection for the redelivery, dead-letter, long-task and timeout tests (off unless the
setting enables it)."""

from __future__ import annotations

from collections.abc import Mapping

from shared.platform.errors import InjectedFault
from shared.platform.settings import Settings

#: Object metadata key (``x-amz-meta-visionfn-fail-attempts``) naming how many deliveries fail.
FAIL_ATTEMPTS_METADATA = "visionfn-fail-attempts"


def inject_fault_if_requested(metadata: Mapping[str, str], receive_count: int, settings: Settings) -> None:
    if not settings.fault_injection or FAIL_ATTEMPTS_METADATA not in metadata:
        return
    fail_attempts = int(metadata[FAIL_ATTEMPTS_METADATA])
    if receive_count <= fail_attempts:
        raise InjectedFault(f"injected failure on delivery {receive_count} of {fail_attempts} requested")


#: Object metadata key (``x-amz-meta-visionfn-work-seconds``): the work takes this much longer.
WORK_SECONDS_METADATA = "visionfn-work-seconds"


def extra_work_seconds(metadata: Mapping[str, str], settings: Settings) -> float:
    """Seconds a test asked the work on this input to last longer (a long task on demand)."""
    if not settings.fault_injection or WORK_SECONDS_METADATA not in metadata:
        return 0.0
    return float(metadata[WORK_SECONDS_METADATA])
