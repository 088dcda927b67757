"""Platform benchmark: gateway overhead, upload-to-result latency, `make up` time to ready.

    make bench            (or: .venv/bin/python -m tests.bench.bench_platform [--requests N])

Starts its own platform exactly as `make up` does (Postgres from DATABASE_URL or a
throwaway cluster), prints the figures, and stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import requests
from sqlalchemy import select

from shared.platform.access import OWNER_HEADER, PLATFORM_TOKEN_HEADER
from shared.platform.db.engine import session_scope
from shared.platform.db.migrate import upgrade
from shared.platform.db.models import ProcessedObject
from shared.platform.settings import PROJECT_ROOT
from tests.conftest import event_file
from tests.platform import free_port_block, running_platform
from tests.postgres import postgres_url


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed_gets(session: requests.Session, url: str, count: int) -> list[float]:
    session.get(url, timeout=10)  # warm the connection
    times = []
    for _ in range(count):
        started = time.perf_counter()
        session.get(url, timeout=10).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return times


def gateway_overhead(platform, count: int) -> dict:
    path = "/api/v1/tasks?limit=1"
    direct_session = requests.Session()  # as the gateway calls it: the platform token and a verified owner
    pid = json.loads((platform.run_dir / "state.json").read_text())["processes"]["tasks"]["pid"]
    environ = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    direct_session.headers.update({PLATFORM_TOKEN_HEADER: environ["VISIONFN_PLATFORM_TOKEN"], OWNER_HEADER: "local"})
    direct = timed_gets(direct_session, platform.state["functions"]["tasks"] + path, count)
    through = timed_gets(platform.http, platform.gateway + path, count)  # the API key checked (then cached)
    return {
        "request": f"GET {path} x {count} (keep-alive)",
        "direct_p50_ms": round(statistics.median(direct), 2),
        "gateway_p50_ms": round(statistics.median(through), 2),
        "direct_p95_ms": round(percentile(direct, 0.95), 2),
        "gateway_p95_ms": round(percentile(through, 0.95), 2),
        "overhead_p50_ms": round(statistics.median(through) - statistics.median(direct), 2),
        "ratio_p50": round(statistics.median(through) / statistics.median(direct), 2),
    }


def upload_latency(platform, database_url: str, count: int) -> dict:
    """Put -> the thumbnail function's row says done (after the thumbnail was stored), by the row's
    ``updated_at`` (this machine's clock), polled in Postgres every 2 ms: polling LocalStack that
    often (a HEAD every 2 ms, as this bench did) took its CPU from the very calls being timed."""
    s3 = boto3.client(
        "s3",
        endpoint_url=platform.env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    bucket = platform.state["bucket"]
    image = event_file("landscape.png")
    latencies = []
    for _ in range(count):
        key = f"uploads/bench/{uuid.uuid4().hex}.png"
        done = select(ProcessedObject.updated_at).where(
            ProcessedObject.consumer == "thumbnail", ProcessedObject.object_key == key, ProcessedObject.status == "done"
        )
        started = time.time()
        s3.put_object(Bucket=bucket, Key=key, Body=image)
        while (finished := _scalar(database_url, done)) is None:
            time.sleep(0.002)
            if time.time() - started > 30:
                raise RuntimeError(f"no thumbnail for {key} after 30 s")
        latencies.append((finished.timestamp() - started) * 1000)
        s3.head_object(Bucket=bucket, Key=key.replace("uploads/", "thumbnails/", 1))  # it is there
    return {
        "path": "put uploads/<key> -> S3 notification -> SQS -> bridge -> thumbnail function -> thumbnail stored -> row done",
        "uploads": count,
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
    }


def _scalar(database_url: str, query):
    with session_scope(database_url) as session:
        return session.scalar(query)


def time_to_ready(database_url: str, runs: int) -> dict:
    """`python -m infra.runner up` (what `make up` runs once installed) until it reports ready."""
    seconds = []
    for run in range(runs):
        base = free_port_block(40)
        run_dir = PROJECT_ROOT / ".run" / f"bench-up-{run}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "VISIONFN_RUN_DIR": str(run_dir),
            "VISIONFN_STACK_NAME": "visionfn-bench",
            "VISIONFN_LOCALSTACK_PORT": str(base),
            "VISIONFN_GATEWAY_PORT": str(base + 1),
            "VISIONFN_FUNCTION_BASE_PORT": str(base + 2),
        }
        started = time.perf_counter()
        runner = subprocess.Popen(
            [sys.executable, "-m", "infra.runner", "up"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        state = run_dir / "state.json"
        while not state.exists():
            if runner.poll() is not None:
                raise RuntimeError(f"runner exited with {runner.returncode}; see {run_dir}/logs")
            time.sleep(0.02)
        seconds.append(time.perf_counter() - started)
        requests.get(f"http://127.0.0.1:{base + 1}/health", timeout=10).raise_for_status()
        runner.send_signal(signal.SIGINT)
        runner.wait(60)
    return {"runs": runs, "median_s": round(statistics.median(seconds), 2), "all_s": [round(s, 2) for s in seconds]}


def key_check_cost(count: int) -> dict:
    """The gateway alone, with and without the API key check, in front of the same trivial
    upstream (a key store that answers at once, so this is the check's own cost, cached)."""
    from aiohttp import web

    from infra.gateway import GatewayRoute, KeyCheck, build_app
    from tests.functional.test_gateway import ServerThread, _echo
    from tests.platform import free_port_block

    class AnyKey:
        def owner_of(self, _key: str) -> str:
            return "local"

    base = free_port_block(3, 31200)
    upstream = web.Application()
    upstream.router.add_route("*", "/{tail:.*}", _echo)
    routes = [GatewayRoute("GET", "/api/v1/tasks", "tasks", f"http://127.0.0.1:{base}")]
    servers = ServerThread()
    servers.serve(upstream, base)
    servers.serve(build_app(routes), base + 1)
    servers.serve(build_app(routes, KeyCheck(AnyKey(), 30), "token"), base + 2)
    session = requests.Session()
    session.headers["Authorization"] = "Bearer vfn_bench"
    try:
        medians = {
            name: statistics.median(timed_gets(session, f"http://127.0.0.1:{port}/api/v1/tasks", count))
            for name, port in (("upstream", base), ("gateway", base + 1), ("gateway_with_key_check", base + 2))
        }
    finally:
        servers.close()
    return {f"{name}_p50_ms": round(value, 3) for name, value in medians.items()} | {
        "key_check_p50_ms": round(medians["gateway_with_key_check"] - medians["gateway"], 3)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--uploads", type=int, default=40)
    parser.add_argument("--up-runs", type=int, default=3)
    options = parser.parse_args()
    report: dict = {"machine": f"{os.cpu_count()} cores", "key_check_cost": key_check_cost(options.requests * 3)}
    with postgres_url() as database_url:
        upgrade(database_url)
        report["make_up_time_to_ready"] = time_to_ready(database_url, options.up_runs)
        with running_platform(database_url, name="bench") as platform:
            report["gateway_overhead"] = gateway_overhead(platform, options.requests)
            report["upload_to_thumbnail_latency"] = upload_latency(platform, database_url, options.uploads)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
