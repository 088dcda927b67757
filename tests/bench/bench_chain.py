"""Chain matching benchmark: the state machine's overhead per step, against the same steps
submitted one by one as plain tasks (the reference), in the same run.

    .venv/bin/python -m tests.bench.bench_chain [--chains 10]

Starts its own platform as `make up` does. A chain of N template steps that all miss runs
every step; its overhead per step is (submit -> done) minus the steps' compute (measured
in-process beforehand), divided by N. The reference is one async task per step, each submitted
when the previous one is done. LocalStack's own floor, in the same run: a state machine of N
Pass states, and one of N ``sqs:sendMessage.waitForTaskToken`` Task states each answered at once
by a poller (SendTaskSuccess), timed from StartExecution to SUCCEEDED; per step: (5 - 1) / 4. Beside
them, the chain's own definition (infra/statemachines/chain_matching.asl.json, its end a Succeed
state) answered by the same poller 50 ms after each message (answered sooner, LocalStack can lose
the answer to its heartbeat wait), the 50 ms taken off: what the definition costs without
workers. Then the webhook delivery latency, task finished -> receipt at a receiver on 127.0.0.1
(tests/bench/bench_webhooks.py). Prints JSON.
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
CHAIN_DEFINITION = PROJECT_ROOT / "infra" / "statemachines" / "chain_matching.asl.json"
DEFINITION_ANSWER_DELAY = 0.05  # seconds before the poller answers a step of the chain's definition


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


class Floor:
    """LocalStack's Step Functions alone: machines created on a queue of their own, every message
    answered by a poller thread (a token state at once, a step of the chain's definition after
    ``DEFINITION_ANSWER_DELAY``), each run timed from StartExecution to SUCCEEDED."""

    def __init__(self, platform) -> None:
        client = {
            "endpoint_url": platform.env["AWS_ENDPOINT_URL"],
            "region_name": "us-east-1",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }
        self.sfn, self.sqs = boto3.client("stepfunctions", **client), boto3.client("sqs", **client)
        self.queue = self.sqs.create_queue(QueueName=f"bench-floor-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        self.stop = threading.Event()

    def answer(self) -> None:
        while not self.stop.is_set():
            for message in self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                body = json.loads(message["Body"])
                if "task_token" in body:  # a step of the chain's definition: answered as a worker that found nothing
                    time.sleep(DEFINITION_ANSWER_DELAY)
                    self.sfn.send_task_success(taskToken=body["task_token"], output='{"found": false}')
                else:
                    self.sfn.send_task_success(taskToken=body["token"], output="{}")
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])

    def create(self, name: str, definition: dict) -> str:
        return self.sfn.create_state_machine(
            name=f"bench-{name}-{uuid.uuid4().hex[:6]}", definition=json.dumps(definition), roleArn="arn:aws:iam::000000000000:role/bench"
        )["stateMachineArn"]

    def machine(self, kind: str, states: int) -> str:
        """``states`` Pass states, or ``states`` token states, one after another."""

        def state(index: int) -> dict:
            following = {"Next": f"S{index + 1}"} if index + 1 < states else {"End": True}
            if kind == "pass":
                return {"Type": "Pass", **following}
            return {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": self.queue, "MessageBody": {"token.$": "$$.Task.Token"}},
                "ResultPath": None,
                **following,
            }

        return self.create(f"{kind}-{states}", {"StartAt": "S0", "States": {f"S{index}": state(index) for index in range(states)}})

    def definition(self) -> str:
        """The chain's state machine as deployed, ending in a Succeed state instead of the chain queue."""
        states = json.loads(CHAIN_DEFINITION.read_text())["States"]
        states["Finish"] = {"Type": "Succeed"}
        return self.create("definition", {"StartAt": "RunStep", "States": states})

    def chain_input(self, steps: int) -> str:
        following = None
        for step in reversed(range(steps)):
            following = {"step": step, "queue_url": self.queue, **({"next": following} if following else {})}
        return json.dumps(
            {"uid": "bench", "request_id": "bench", "step_heartbeat_seconds": 60, "step_timeout_seconds": 600, "next": following}
        )

    def run_ms(self, arn: str, execution_input: str = "{}") -> float:
        started = time.perf_counter()
        execution = self.sfn.start_execution(stateMachineArn=arn, input=execution_input)["executionArn"]
        while (status := self.sfn.describe_execution(executionArn=execution)["status"]) == "RUNNING":
            time.sleep(0.005)
        assert status == "SUCCEEDED", status
        return (time.perf_counter() - started) * 1000

    def medians(self, one: tuple[str, str], five: tuple[str, str], runs: int) -> tuple[float, float]:
        """Median ms of ``runs`` runs of a 1-step and a 5-step machine (``(arn, input)`` each), after one warm run each."""
        self.run_ms(*one), self.run_ms(*five)
        ones = [self.run_ms(*one) for _ in range(runs)]
        fives = [self.run_ms(*five) for _ in range(runs)]
        return statistics.median(ones), statistics.median(fives)


def localstack_floor(platform, runs: int) -> dict:
    """ms per extra state of a Pass-only machine and of a waitForTaskToken machine answered at once,
    and per extra step of the chain's own definition answered after the delay (the delay taken off)."""
    floor = Floor(platform)
    poller = threading.Thread(target=floor.answer, daemon=True)
    poller.start()
    figures = {}
    try:
        for kind in ("pass", "task_token"):
            one, five = floor.medians((floor.machine(kind, 1), "{}"), (floor.machine(kind, 5), "{}"), runs)
            figures[f"{kind}_ms_per_extra_state"] = round((five - one) / 4, 1)
            figures[f"{kind}_1_state_ms"] = round(one, 1)
        arn = floor.definition()
        one, five = floor.medians((arn, floor.chain_input(1)), (arn, floor.chain_input(5)), runs)
        figures["chain_definition_ms_per_extra_step"] = round((five - one) / 4 - DEFINITION_ANSWER_DELAY * 1000, 1)
    finally:
        floor.stop.set()
        poller.join(5)
    return figures


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
