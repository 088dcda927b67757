"""Metrics as the cloud reads them: CloudWatch Embedded Metric Format (EMF) log lines.

A figure is written as one JSON log line whose ``_aws`` member declares which of its keys are
metrics (with their units) and which are dimensions; CloudWatch Logs turns such a line into
metrics in the ``visionfn`` namespace with no call to CloudWatch (no latency, no client, nothing
lost when the function ends). The other keys of the line (owner, request id, task uid) are
properties: searchable in Logs Insights, not dimensions, so they cost no metric of their own.

Locally the same lines are read back by ``infra/metrics.py`` (``GET /metrics``, ``make status``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Literal

from shared.platform.settings import get_settings

NAMESPACE = "visionfn"
Unit = Literal["Count", "Milliseconds", "Bytes", "None"]

log = logging.getLogger("visionfn.metrics")


def emit_metrics(
    message: str,
    dimensions: Mapping[str, str],
    values: Mapping[str, tuple[float, Unit]],
    **properties: object,
) -> None:
    """One EMF line: ``values`` (``name: (value, unit)``) under ``dimensions``, with ``message``
    and ``properties`` beside them (the line is a log line too)."""
    if not get_settings().metrics:
        return
    declaration = {
        "Timestamp": int(time.time() * 1000),
        "CloudWatchMetrics": [
            {
                "Namespace": NAMESPACE,
                "Dimensions": [list(dimensions)],
                "Metrics": [{"Name": name, "Unit": unit} for name, (_value, unit) in values.items()],
            }
        ],
    }
    fields = {key: value for key, value in properties.items() if value is not None}
    figures = {name: round(value, 3) for name, (value, _unit) in values.items()}
    log.info(message, extra={"_aws": declaration, **fields, **dimensions, **figures})
