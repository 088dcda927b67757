"""The inbox at the speed of the work: photos put to inbox/faces/ at once, until every one is done
(its output and sidecar stored, its row written), against the same photos through the same code
(anonymize, encode, the sidecar's JSON) one after another in one process, in the same run.

    .venv/bin/python -m tests.bench.bench_inbox [--photos 48] [--rounds 2]

The platform is started as `make up` starts it (the template's concurrency: 2 per queue). Each
round times the in-process pass (the platform idle) and then the burst. Done is read from the
database (the inbox's rows are written last, after both objects), polled every 10 ms: listing the
bucket that often would take LocalStack's CPU from the work being measured. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

import boto3
from sqlalchemy import func, select

from shared.faces.privacy import FaceOptions, FacePrivacy
from shared.faces.settings import get_face_settings
from shared.faces.tables import FaceAnonymization
from shared.platform.db.engine import session_scope
from shared.platform.db.migrate import upgrade
from tests.bench.bench_logging import photos
from tests.platform import running_platform
from tests.postgres import postgres_url


def in_process_ms(privacy: FacePrivacy, batch: list[tuple[str, bytes]]) -> float:
    """What the inbox function does with each photo, minus the platform: ms for the whole batch."""
    started = time.perf_counter()
    for _name, data in batch:
        report, image = privacy.anonymize(data, FaceOptions(), keep_format=True)
        report.model_dump_json(indent=2).encode()
        assert image.data
    return (time.perf_counter() - started) * 1000


def burst_ms(platform, database_url: str, batch: list[tuple[str, bytes]]) -> float:
    """Every photo put to inbox/faces/<run>/ at once (one after another from here), to the last
    one's row: ms for the whole batch."""
    s3 = boto3.client(
        "s3", endpoint_url=platform.env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    bucket, folder = platform.state["bucket"], f"inbox/faces/bench-{uuid.uuid4().hex[:8]}/"
    done = select(func.count()).select_from(FaceAnonymization).where(FaceAnonymization.object_key.startswith(folder))
    started = time.perf_counter()
    for name, data in batch:
        s3.put_object(Bucket=bucket, Key=folder + name, Body=data)
    deadline = started + 60 + len(batch) * 5
    while time.perf_counter() < deadline:
        with session_scope(database_url) as session:
            if session.scalar(done) == len(batch):
                return (time.perf_counter() - started) * 1000
        time.sleep(0.01)
    raise RuntimeError(f"the inbox did not finish {len(batch)} photos in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    batch = photos(options.photos + 2)
    warm, batch = batch[:2], batch[2 : 2 + options.photos]
    privacy = FacePrivacy(get_face_settings())
    in_process_ms(privacy, warm)
    rounds = []
    with postgres_url() as database_url:
        upgrade(database_url)
        with running_platform(database_url, name="bench-inbox") as platform:
            burst_ms(platform, database_url, warm)  # every process has served once: models loaded
            for _ in range(options.rounds):
                local = in_process_ms(privacy, batch) / len(batch)
                through = burst_ms(platform, database_url, batch) / len(batch)
                rounds.append({"in_process_ms_per_photo": round(local, 1), "inbox_ms_per_photo": round(through, 1)})
    local = statistics.median(r["in_process_ms_per_photo"] for r in rounds)
    through = statistics.median(r["inbox_ms_per_photo"] for r in rounds)
    report = {
        "photos": len(batch),
        "rounds": rounds,
        "in_process_ms_per_photo": round(local, 1),
        "inbox_ms_per_photo": round(through, 1),
        "inbox_over_in_process": round(through / local, 3),
        "aim": "<= 1.15 (issue 24)",
        "path": "put -> S3 notification -> SQS -> bridge -> face_process -> S3 get -> anonymize -> S3 puts -> row",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
