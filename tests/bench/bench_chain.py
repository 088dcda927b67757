"""Chain matching benchmark: the state machine's overhead per step, against the same steps
submitted one by one as plain tasks (the reference), in the same run.

    .venv/bin/python -m tests.bench.bench_chain [--chains 10]

Starts its own platform as `make up` does. A chain of N template steps that all miss runs
every step; its overhead per step is (submit -> done) minus the steps' compute (measured
in-process beforehand), divided by N. The reference is one async task per step, each submitted
when the previous one is done. Then the webhook delivery latency, task finished -> receipt at a
receiver on 127.0.0.1 (tests/bench/bench_webhooks.py). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from shared.matching.tools import run_tool
from shared.platform.db.migrate import upgrade
from shared.platform.settings import PROJECT_ROOT
from tests.bench.bench_runtime import summary
from tests.bench.bench_webhooks import LOOPBACK, delivery_latency
from tests.platform import running_platform
from tests.postgres import postgres_url

SAMPLES = PROJECT_ROOT.parent / "shared" / "data" / "matching" / "opencv_samples"
IMAGE = (SAMPLES / "box_in_scene.png").read_bytes()
TEMPLATE = (SAMPLES / "box.png").read_bytes()
MISS = {"threshold": 0.995}


def compute_ms() -> float:
    image, template = IMAGE, TEMPLATE
    run_tool("template", [image, template], MISS)
    runs = []
    for _ in range(7):
        started = time.perf_counter()
        run_tool("template", [image, template], MISS)
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


class Client:
    def __init__(self, platform) -> None:
        self.http, self.gateway = platform.http, platform.gateway

    def wait(self, uid: str) -> dict:
        while True:
            task = self.http.get(f"{self.gateway}/api/v1/tasks/{uid}", timeout=10).json()
            if task["status"] in ("done", "error"):
                return task
            time.sleep(0.005)

    def files(self) -> dict:
        return {"image": ("scene.png", IMAGE), "template": ("box.png", TEMPLATE)}

    def chain_ms(self, steps: int) -> float:
        started = time.perf_counter()
        answer = self.http.post(
            f"{self.gateway}/api/v1/match/chain",
            files=self.files(),
            timeout=30,
            data={"steps": json.dumps([{"tool": "template", "params": MISS}] * steps)},
        )
        task = self.wait(answer.json()["uid"])
        assert task["status"] == "done" and task["result_data"]["completed_step"] == steps, task
        return (time.perf_counter() - started) * 1000

    def one_by_one_ms(self, steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            answer = self.http.post(f"{self.gateway}/api/v1/match/template", files=self.files(), data=MISS, timeout=30)
            assert self.wait(answer.json()["uid"])["status"] == "done"
        return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=10, help="runs of each length")
    parser.add_argument("--deliveries", type=int, default=20, help="tasks whose webhook delivery is timed")
    options = parser.parse_args()
    compute = compute_ms()
    report: dict = {"machine": f"{os.cpu_count()} cores", "template_step_compute_ms": round(compute, 1)}
    with postgres_url() as database_url:
        upgrade(database_url)
        with running_platform(database_url, name="bench-chain", VISIONFN_WEBHOOK_ALLOWED_NETWORKS=LOOPBACK) as platform:
            client = Client(platform)
            client.chain_ms(1)  # warm: the work process starts, the state machine is loaded
            client.one_by_one_ms(1)
            for steps in (1, 3, 5):
                chains = [client.chain_ms(steps) for _ in range(options.chains)]
                plain = [client.one_by_one_ms(steps) for _ in range(options.chains)]
                report[f"{steps}_steps"] = {
                    "chain_submit_to_done_ms": summary(chains),
                    "chain_overhead_per_step_ms": summary([(total - steps * compute) / steps for total in chains]),
                    "reference_one_task_per_step_overhead_per_step_ms": summary([(total - steps * compute) / steps for total in plain]),
                }
            report["webhook_delivery_ms"] = delivery_latency(platform, database_url, options.deliveries)
    report["path"] = (
        "chain: POST (gateway) -> outbox -> StartExecution -> per step: sqs:sendMessage.waitForTaskToken -> "
        "bridge -> worker -> SendTaskSuccess -> ... -> chain queue -> bridge -> match_chain -> DB; polled every 5 ms"
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
