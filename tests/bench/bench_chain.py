"""Chain matching benchmark: the state machine's overhead per step, against the same steps
submitted one by one as plain tasks (the reference), in the same run.

    .venv/bin/python -m tests.bench.bench_chain [--chains 10]

Starts its own platform as `make up` does. A chain of N template steps that all miss runs
every step; its overhead per step is (submit -> done) minus the steps' compute (measured
in-process beforehand), divided by N. The reference is one async task per step, each submitted
when the previous one is done. LocalStack's own floor, in the same run: a state machine of N
Pass states, and one of N ``sqs:sendMessage.waitForTaskToken`` Task states each answered at once
by a poller (SendTaskSuccess), timed from StartExecution to SUCCEEDED; per step: (5 - 1) / 4. Then the webhook delivery latency, task finished -> receipt at a
receiver on 127.0.0.1 (tests/bench/bench_webhooks.py). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid

import boto3

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


def localstack_floor(platform, runs: int) -> dict:
    """ms per extra state of a Pass-only machine and of a waitForTaskToken machine answered at once."""
    client = {
        "endpoint_url": platform.env["AWS_ENDPOINT_URL"],
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    sfn, sqs = boto3.client("stepfunctions", **client), boto3.client("sqs", **client)
    queue = sqs.create_queue(QueueName=f"bench-floor-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    stop = threading.Event()

    def answer_at_once() -> None:
        while not stop.is_set():
            for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                sfn.send_task_success(taskToken=json.loads(message["Body"])["token"], output="{}")
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    def machine(kind: str, states: int) -> str:
        def state(index: int) -> dict:
            following = {"Next": f"S{index + 1}"} if index + 1 < states else {"End": True}
            if kind == "pass":
                return {"Type": "Pass", **following}
            return {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
                "ResultPath": None,
                **following,
            }

        definition = {"StartAt": "S0", "States": {f"S{index}": state(index) for index in range(states)}}
        return sfn.create_state_machine(
            name=f"bench-{kind}-{states}-{uuid.uuid4().hex[:6]}",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::000000000000:role/bench",
        )["stateMachineArn"]

    def run_ms(arn: str) -> float:
        started = time.perf_counter()
        execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        while (status := sfn.describe_execution(executionArn=execution)["status"]) == "RUNNING":
            time.sleep(0.005)
        assert status == "SUCCEEDED", status
        return (time.perf_counter() - started) * 1000

    poller = threading.Thread(target=answer_at_once, daemon=True)
    poller.start()
    floor = {}
    try:
        for kind in ("pass", "task_token"):
            one, five = machine(kind, 1), machine(kind, 5)
            run_ms(one), run_ms(five)  # warm
            ones = [run_ms(one) for _ in range(runs)]
            fives = [run_ms(five) for _ in range(runs)]
            floor[f"{kind}_ms_per_extra_state"] = round((statistics.median(fives) - statistics.median(ones)) / 4, 1)
            floor[f"{kind}_1_state_ms"] = round(statistics.median(ones), 1)
    finally:
        stop.set()
        poller.join(5)
    return floor


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
            report["localstack_floor"] = floor = localstack_floor(platform, options.chains)
            for steps in (3, 5):
                overhead = report[f"{steps}_steps"]["chain_overhead_per_step_ms"]["p50"]
                report[f"{steps}_steps"]["chain_overhead_per_step_above_the_task_token_floor_ms"] = round(
                    overhead - floor["task_token_ms_per_extra_state"], 1
                )
            report["webhook_delivery_ms"] = delivery_latency(platform, database_url, options.deliveries)
    report["path"] = (
        "chain: POST (gateway) -> outbox -> StartExecution -> per step: sqs:sendMessage.waitForTaskToken -> "
        "bridge -> worker -> SendTaskSuccess -> ... -> chain queue -> bridge -> match_chain -> DB; polled every 5 ms"
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
