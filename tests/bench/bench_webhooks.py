"""Webhook delivery latency: from a task's finish to the receipt of its webhook.

    .venv/bin/python -m tests.bench.bench_webhooks [--tasks 20]

Starts a fresh platform (Postgres, LocalStack, the functions) that allows receivers on
127.0.0.1, registers a hook pointing at a receiver in this process, submits quick template
matches one after another, and for each measures the time from the task's ``updated_at`` (the
commit that finished it, which also writes its event to the outbox) to the moment the receiver
had the whole POST: outbox -> EventBridge -> rule -> SQS -> event bridge -> notifier -> HTTP.
Prints p50/p95 as JSON. ``delivery_latency(platform, database_url)`` runs the same on a running
platform (bench_chain.py may call it).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
import uuid
from datetime import datetime

import requests
from PIL import Image

from shared.platform.keys import ApiKeys
from tests.conftest import shared_data
from tests.webhook_receiver import Receiver

MESSI = "matching/opencv_samples/messi5.jpg"
LOOPBACK = '["127.0.0.0/8", "::1/128"]'


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def delivery_latency(platform, database_url: str, tasks: int = 20) -> dict:
    """Finish-to-receipt latency of ``tasks`` webhooks on a running platform that allows loopback."""
    _record, key = ApiKeys(database_url).create(f"bench-{uuid.uuid4().hex[:8]}", "webhook bench")
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    messi = shared_data(MESSI)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(messi)).crop((200, 50, 260, 110)).save(buffer, format="PNG")
    files = {"image": ("messi5.jpg", messi), "template": ("ball.png", buffer.getvalue())}
    latencies = []
    with Receiver() as receiver:
        hook = http.post(f"{platform.gateway}/api/v1/webhooks", json={"url": receiver.url, "secret": "bench"}, timeout=30)
        hook.raise_for_status()
        for index in range(tasks + 1):
            response = http.post(f"{platform.gateway}/api/v1/match/template", files=files, timeout=30)
            response.raise_for_status()
            uid = response.json()["uid"]
            request = receiver.wait_for(index + 1, timeout=60)[index]
            assert json.loads(request.body)["uid"] == uid, "deliveries arrived out of order"
            task = http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=10).json()
            finished = datetime.fromisoformat(task["updated_at"]).timestamp()
            if index:  # the first one warms the notifier (imports, connections)
                latencies.append((request.at - finished) * 1000)
        http.delete(f"{platform.gateway}/api/v1/webhooks/{hook.json()['id']}", timeout=10)
    return {
        "path": "task finished (updated_at) -> outbox -> EventBridge -> rule -> SQS -> bridge -> notifier -> POST received on 127.0.0.1",
        "tasks": tasks,
        "delivery_p50_ms": round(statistics.median(latencies), 1),
        "delivery_p95_ms": round(percentile(latencies, 0.95), 1),
        "delivery_max_ms": round(max(latencies), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20)
    arguments = parser.parse_args()

    from shared.platform.db.migrate import upgrade
    from tests.platform import running_platform
    from tests.postgres import postgres_url

    started = time.perf_counter()
    with postgres_url() as database_url:
        upgrade(database_url)
        with running_platform(database_url, name="bench-webhooks", VISIONFN_WEBHOOK_ALLOWED_NETWORKS=LOOPBACK) as platform:
            report = delivery_latency(platform, database_url, arguments.tasks)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
