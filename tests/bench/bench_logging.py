"""What the logs and metrics cost: the same work on a platform that logs every line as JSON with
its EMF metrics (the default) and on one that logs only warnings and writes no metrics (the
baseline), started one after the other, twice each (A B A B), in one run.

    .venv/bin/python -m tests.bench.bench_logging [--tasks 30] [--photos 24]

Measures a tiny template task (submit -> done, p50) and a burst of photos to inbox/faces/ (put ->
every output exists), and the formatter's cost per line in this process. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
import uuid

import boto3

from shared.platform.db.migrate import upgrade
from shared.platform.logs import json_formatter, log_context
from shared.platform.settings import PROJECT_ROOT
from tests.bench.bench_runtime import Bench
from tests.platform import running_platform
from tests.postgres import postgres_url

PHOTOS = PROJECT_ROOT.parent / "shared" / "data" / "faces" / "wider_subset" / "images"
CONFIGURATIONS = {
    "logs and metrics": {},
    "baseline (warnings only, no metrics)": {"VISIONFN_LOG_LEVEL": "WARNING", "VISIONFN_METRICS": "false"},
}


def photos(count: int) -> list[tuple[str, bytes]]:
    paths = sorted(PHOTOS.rglob("*.jpg"))[: count + 2]
    return [(path.name, path.read_bytes()) for path in paths]


def inbox_burst_ms(platform, batch: list[tuple[str, bytes]]) -> float:
    s3 = boto3.client(
        "s3", endpoint_url=platform.env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    bucket, run = platform.state["bucket"], uuid.uuid4().hex[:8]
    expected = {f"outputs/faces/bench-{run}/{name}" for name, _ in batch}
    started = time.perf_counter()
    for name, data in batch:
        s3.put_object(Bucket=bucket, Key=f"inbox/faces/bench-{run}/{name}", Body=data)
    while True:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"outputs/faces/bench-{run}/")
        if expected <= {item["Key"] for item in listed.get("Contents", [])}:
            return (time.perf_counter() - started) * 1000
        time.sleep(0.01)


def lines_logged(platform) -> int:
    return sum(len(path.read_bytes().splitlines()) for path in (platform.run_dir / "logs").glob("*.log"))


def formatter_cost_us(lines: int = 20000) -> float:
    logger = logging.getLogger("bench.formatter")
    handler = logging.StreamHandler(open(os.devnull, "w"))
    handler.setFormatter(json_formatter("bench"))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    started = time.perf_counter()
    with log_context(request_id="abc-123", task_uid="0" * 32, owner="bench"):
        for number in range(lines):
            logger.info("task %d done", number, extra={"tool": "template", "attempt": 1})
    handler.stream.close()
    return (time.perf_counter() - started) / lines * 1e6


def measure(database_url: str, name: str, overrides: dict[str, str], tasks: int, batch: list[tuple[str, bytes]]) -> dict:
    with running_platform(database_url, name="bench-logging", **overrides) as platform:
        bench = Bench(platform, database_url)
        for _ in range(5):  # warm: every process has served once
            bench.submit_to_done_ms()
        inbox_burst_ms(platform, batch[:2])
        before = lines_logged(platform)
        task_ms = [bench.submit_to_done_ms() for _ in range(tasks)]
        per_task_lines = (lines_logged(platform) - before) / tasks
        burst_ms = inbox_burst_ms(platform, batch[2:])
        return {
            "configuration": name,
            "tiny_task_p50_ms": round(statistics.median(task_ms), 1),
            "log_lines_per_task": round(per_task_lines, 1),
            "inbox_ms_per_photo": round(burst_ms / len(batch[2:]), 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--photos", type=int, default=24)
    options = parser.parse_args()
    batch = photos(options.photos)
    runs = []
    with postgres_url() as database_url:
        upgrade(database_url)
        for _round in range(2):
            for name, overrides in CONFIGURATIONS.items():
                runs.append(measure(database_url, name, overrides, options.tasks, batch))
    result: dict = {"runs": runs, "formatter_us_per_line": round(formatter_cost_us(), 1)}
    for metric in ("tiny_task_p50_ms", "inbox_ms_per_photo"):
        logged, baseline = ([run[metric] for run in runs if run["configuration"] == name] for name in CONFIGURATIONS)
        result[f"{metric}_overhead_percent"] = round((statistics.mean(logged) / statistics.mean(baseline) - 1) * 100, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
