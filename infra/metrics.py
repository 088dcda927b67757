"""The local stand-in for CloudWatch metrics: the Embedded Metric Format lines every process of
the platform logged (shared/platform/metrics.py), read back from ``<run dir>/logs/*.log`` and
summed per metric and dimensions, as CloudWatch would from the same lines once deployed.

``GET /metrics`` on the gateway answers them as Prometheus text (the caller's own figures where a
line names an owner, and the platform's: queues, uploads); ``make status`` prints a summary per
function. Files are read incrementally: each read takes only the lines written since the last.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

#: Metrics that say how much there is now (the last value counts), not how often something happened.
GAUGES = frozenset({"dlq_depth"})
#: Histogram bounds of the millisecond metrics (Prometheus buckets).
MILLISECOND_BOUNDS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
RECENT_VALUES = 2048  # kept per series for its percentiles


@dataclass
class Series:
    """One metric under one set of dimension values (and one owner, or none)."""

    unit: str
    count: int = 0
    total: float = 0.0
    last: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(MILLISECOND_BOUNDS))
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_VALUES))

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.last = value
        self.recent.append(value)
        if self.unit == "Milliseconds" and (index := bisect.bisect_left(MILLISECOND_BOUNDS, value)) < len(self.buckets):
            self.buckets[index] += 1

    def percentile(self, share: float) -> float:
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)] if ordered else math.nan


#: (owner or None, metric name, ((dimension, value), ...)) -> its series
SeriesKey = tuple[str | None, str, tuple[tuple[str, str], ...]]


class MetricLines:
    """The EMF lines under ``log_dir``, summed; ``read()`` takes in what was written since."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.series: dict[SeriesKey, Series] = {}
        self._offsets: dict[Path, int] = {}
        self._lock = threading.Lock()  # one reader at a time

    def read(self) -> MetricLines:
        with self._lock:
            for path in sorted(self.log_dir.glob("*.log")):
                for record in self._new_records(path):
                    self.add(record)
        return self

    def _new_records(self, path: Path) -> Iterator[dict[str, Any]]:
        offset = self._offsets.get(path, 0)
        try:
            with path.open("rb") as file:
                if file.seek(0, 2) < offset:  # the file was started anew
                    offset = 0
                file.seek(offset)
                data = file.read()
        except OSError:
            return
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next read
        self._offsets[path] = offset + len(complete)
        for line in complete.splitlines():
            if b'"_aws"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record

    def add(self, record: dict[str, Any]) -> None:
        """One EMF record's metrics (anything that is not one is left out)."""
        try:
            directives = record["_aws"]["CloudWatchMetrics"]
        except (KeyError, TypeError):
            return
        owner = record.get("owner") if isinstance(record.get("owner"), str) else None
        for directive in directives if isinstance(directives, list) else []:
            names = [name for group in directive.get("Dimensions", []) for name in group][:8]
            dimensions = tuple((name, str(record.get(name, ""))) for name in names)
            for metric in directive.get("Metrics", []):
                value = record.get(metric.get("Name"))
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    key = (owner, metric["Name"], dimensions)
                    self.series.setdefault(key, Series(str(metric.get("Unit", "None")))).add(float(value))

    def visible_to(self, owner: str | None) -> dict[tuple[str, tuple[tuple[str, str], ...]], Series]:
        """The series ``owner`` may see (theirs and those of no owner), owners merged; None: all."""
        merged: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
        with self._lock:
            items = sorted(self.series.items(), key=lambda item: (item[0][1], item[0][2]))
        for (line_owner, name, dimensions), series in items:
            if owner is not None and line_owner not in (None, owner):
                continue
            into = merged.setdefault((name, dimensions), Series(series.unit))
            into.count += series.count
            into.total += series.total
            into.last = series.last
            into.buckets = [a + b for a, b in zip(into.buckets, series.buckets, strict=True)]
            into.recent.extend(series.recent)
        return merged


class _Families(Collector):
    def __init__(self, series: dict[tuple[str, tuple[tuple[str, str], ...]], Series]) -> None:
        self.series = series

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Any] = {}
        for (name, dimensions), series in self.series.items():
            labels = [label for label, _ in dimensions]
            values = [value for _, value in dimensions]
            if name in GAUGES:
                family = families.setdefault(name, GaugeMetricFamily(f"visionfn_{name}", f"{name} (last value)", labels=labels))
                family.add_metric(values, series.last)
            elif series.unit == "Milliseconds":
                family = families.setdefault(
                    name, HistogramMetricFamily(f"visionfn_{name}_milliseconds", f"{name} in milliseconds", labels=labels)
                )
                cumulative, buckets = 0, []
                for bound, count in zip(MILLISECOND_BOUNDS, series.buckets, strict=True):
                    cumulative += count
                    buckets.append((str(bound), cumulative))
                family.add_metric(values, [*buckets, ("+Inf", series.count)], series.total)
            else:
                family = families.setdefault(name, CounterMetricFamily(f"visionfn_{name}", f"{name} ({series.unit})", labels=labels))
                family.add_metric(values, series.total)
        return families.values()


def prometheus_text(series: dict[tuple[str, tuple[tuple[str, str], ...]], Series]) -> bytes:
    """The series in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(series))
    return generate_latest(registry)


def function_summary(log_dir: Path) -> list[dict[str, Any]]:
    """Per function: requests, errors (5xx), p50 and p95 of their duration in ms (``make status``)."""
    series = MetricLines(log_dir).read().visible_to(None)
    rows: dict[str, dict[str, Any]] = {}
    durations: dict[str, Series] = {}
    for (name, dimensions), one in series.items():
        function = dict(dimensions).get("function")
        if function is None or name not in ("requests", "errors", "duration"):
            continue
        row = rows.setdefault(function, {"function": function, "requests": 0, "errors": 0})
        if name == "duration":
            durations.setdefault(function, Series("Milliseconds")).recent.extend(one.recent)
        else:
            row[name] += int(one.total)
    for function, row in rows.items():
        if function in durations:
            row["p50_ms"] = round(durations[function].percentile(0.5), 1)
            row["p95_ms"] = round(durations[function].percentile(0.95), 1)
    return sorted(rows.values(), key=lambda row: row["function"])
