"""Reads template.yaml: the functions, their HTTP routes and queue triggers, their environment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared.platform.settings import PROJECT_ROOT

TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags into their long form (``!Ref`` -> Ref)."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader subclass)


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str  # API Gateway syntax: /api/v1/tasks/{uid}
    public: bool = False  # `Auth: {Authorizer: NONE}`: no API key needed


#: Concurrent deliveries of one SQS event source when its ScalingConfig sets none (AWS's minimum).
DEFAULT_QUEUE_CONCURRENCY = 2


@dataclass(frozen=True)
class QueueTrigger:
    queue: str  # logical id of the AWS::SQS::Queue
    batch_size: int
    report_batch_item_failures: bool
    concurrency: int  # ScalingConfig.MaximumConcurrency: batches delivered at once


@dataclass(frozen=True)
class ScheduleTrigger:
    name: str  # the event's name in the template
    every_seconds: int  # Schedule: rate(N minute[s] | hour[s] | day[s])


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str  # folder under functions/
    target: str  # entry point in functions/<name>/main.py
    timeout: int
    routes: tuple[ApiRoute, ...] = ()
    queues: tuple[QueueTrigger, ...] = ()
    schedules: tuple[ScheduleTrigger, ...] = ()
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def triggered(self) -> bool:
        """Whether anything invokes it locally (the authorizer has no events: the gateway checks keys)."""
        return bool(self.routes or self.queues or self.schedules)

    @property
    def source(self) -> Path:
        return PROJECT_ROOT / "functions" / self.name / "main.py"


def function_specs(template: dict[str, Any]) -> list[FunctionSpec]:
    """Every AWS::Serverless::Function, in a stable order (by folder name)."""
    global_function = template.get("Globals", {}).get("Function", {})
    global_env = global_function.get("Environment", {}).get("Variables", {})
    specs = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties", {})
        build_args = resource.get("Metadata", {}).get("DockerBuildArgs", {})
        if "FUNCTION" not in build_args or "TARGET" not in build_args:
            raise ValueError(f"{logical_id}: Metadata.DockerBuildArgs needs FUNCTION and TARGET")
        routes, queues, schedules = [], [], []
        for event_name, event in properties.get("Events", {}).items():
            event_properties = event.get("Properties", {})
            if event["Type"] in ("HttpApi", "Api"):
                public = event_properties.get("Auth", {}).get("Authorizer") == "NONE"
                routes.append(ApiRoute(event_properties["Method"].upper(), event_properties["Path"], public))
            elif event["Type"] == "SQS":
                queues.append(
                    QueueTrigger(
                        queue=_logical_id_of(event_properties["Queue"]),
                        batch_size=int(event_properties.get("BatchSize", 10)),
                        report_batch_item_failures="ReportBatchItemFailures" in event_properties.get("FunctionResponseTypes", []),
                        concurrency=int(event_properties.get("ScalingConfig", {}).get("MaximumConcurrency", DEFAULT_QUEUE_CONCURRENCY)),
                    )
                )
            elif event["Type"] == "Schedule":
                schedules.append(ScheduleTrigger(event_name, rate_seconds(event_properties["Schedule"])))
            else:
                raise ValueError(f"{logical_id}: event type {event['Type']} has no local runtime")
        environment = {**global_env, **properties.get("Environment", {}).get("Variables", {})}
        specs.append(
            FunctionSpec(
                logical_id=logical_id,
                name=build_args["FUNCTION"],
                target=build_args["TARGET"],
                timeout=int(properties.get("Timeout", global_function.get("Timeout", 3))),
                routes=tuple(routes),
                queues=tuple(queues),
                schedules=tuple(schedules),
                environment=environment,
            )
        )
    return sorted(specs, key=lambda spec: spec.name)


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int:
    """``rate(5 minutes)`` -> 300. Cron expressions have no local runtime."""
    match = _RATE.match(expression.strip())
    if not match:
        raise ValueError(f"schedule {expression!r}: the local runtime runs rate(N minute[s]|hour[s]|day[s]) only")
    return int(match[1]) * _UNIT_SECONDS[match[2].rstrip("s")]


def _logical_id_of(reference: Any) -> str:
    if isinstance(reference, dict) and "Fn::GetAtt" in reference:
        return reference["Fn::GetAtt"][0]
    if isinstance(reference, dict) and "Ref" in reference:
        return reference["Ref"]
    raise ValueError(f"cannot tell which resource {reference!r} names")


@dataclass(frozen=True)
class StackContext:
    """What a deployed stack lets us resolve: parameters, pseudo parameters, physical ids."""

    stack_name: str
    region: str
    account_id: str
    parameters: dict[str, str]
    physical_ids: dict[str, str]

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        for table in (pseudo, self.parameters, self.physical_ids):
            if name in table:
                return table[name]
        raise KeyError(f"cannot resolve Ref {name}: not a parameter or a deployed resource")

    def resolve(self, value: Any) -> str:
        """Resolve the intrinsics environment variables use (Ref, Sub) to a string."""
        if isinstance(value, (str, int, float, bool)):
            return str(value)
        if isinstance(value, dict) and "Ref" in value:
            return self.ref(value["Ref"])
        if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}!]+)\}", lambda match: self.ref(match[1]), value["Fn::Sub"])
        raise ValueError(f"the local runtime cannot resolve {value!r}")
