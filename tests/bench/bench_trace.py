"""Where each millisecond goes: one tiny template task and one photo to inbox/faces/ followed
through every hop, from the platform's own log lines (VISIONFN_LOG_LEVEL=DEBUG adds a line at
each hop of a job: stored, sent, received, claimed, read, worked, written, announced).

    .venv/bin/python -m tests.bench.bench_trace [--runs 5]

Prints, for the median run of each path, every line of the job with its time from the start
(the client's submit, or the photo's put) and from the line before. JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import datetime

import boto3

from infra.logs import job_lines, read_lines
from shared.platform.db.migrate import upgrade
from tests.bench.bench_logging import photos
from tests.bench.bench_runtime import IMAGE, TEMPLATE, Bench
from tests.platform import running_platform
from tests.postgres import postgres_url


def _at(record: dict) -> float:
    return datetime.fromisoformat(record["timestamp"]).timestamp()


def hops(records: list[dict], started: float) -> list[dict]:
    """Each line: its process, its message, ms since the start and since the line before."""
    rows, before = [], started
    for record in records:
        at = _at(record)
        rows.append(
            {
                "ms": round((at - started) * 1000, 1),
                "step_ms": round((at - before) * 1000, 1),
                "process": record.get("function"),
                "message": str(record.get("message", ""))[:120],
            }
        )
        before = at
    return rows


def traced_task(bench: Bench, platform) -> tuple[float, list[dict]]:
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    started = time.time()
    response = bench.http.post(
        f"{platform.gateway}/api/v1/match/template",
        files={"image": ("messi5.jpg", IMAGE), "template": ("t.png", TEMPLATE)},
        headers={"X-Request-Id": request_id},
        timeout=30,
    )
    response.raise_for_status()
    bench.wait(response.json()["uid"])
    total_ms = (time.time() - started) * 1000
    time.sleep(0.5)  # the notifier's and the bridge's last lines
    return total_ms, hops(job_lines(list(read_lines(platform.run_dir / "logs")), request_id), started)


def traced_photo(platform, name: str, data: bytes) -> tuple[float, list[dict]]:
    s3 = boto3.client(
        "s3", endpoint_url=platform.env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    bucket, key = platform.state["bucket"], f"inbox/faces/trace-{uuid.uuid4().hex[:8]}-{name}"
    output = key.replace("inbox/", "outputs/", 1)
    started = time.time()
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    while True:
        try:
            s3.head_object(Bucket=bucket, Key=output)
            break
        except s3.exceptions.ClientError:
            time.sleep(0.005)
    total_ms = (time.time() - started) * 1000
    time.sleep(0.5)
    return total_ms, hops(job_lines(list(read_lines(platform.run_dir / "logs")), key), started)


def median_run(runs: list[tuple[float, list[dict]]]) -> dict:
    ordered = sorted(runs, key=lambda run: run[0])
    _total, rows = ordered[len(ordered) // 2]
    return {"runs_ms": [round(run[0], 1) for run in runs], "median_ms": round(statistics.median(r[0] for r in runs), 1), "median_run": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with postgres_url() as database_url:
        upgrade(database_url)
        with running_platform(database_url, name="bench-trace", VISIONFN_LOG_LEVEL="DEBUG") as platform:
            bench = Bench(platform, database_url)
            for _ in range(3):
                bench.submit_to_done_ms()  # warm
            batch = photos(options.runs + 1)
            traced_photo(platform, *batch[0])  # warm: the face models load
            report = {
                "tiny_template_task": median_run([traced_task(bench, platform) for _ in range(options.runs)]),
                "photo_to_inbox_faces": median_run([traced_photo(platform, name, data) for name, data in batch[1:]]),
                "note": "client-side totals; each line's ms from the client's start (clocks of one machine); "
                "DEBUG lines cost a little themselves",
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
