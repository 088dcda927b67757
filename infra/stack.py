"""LocalStack in host mode, and the deployment of template.yaml to its CloudFormation."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.settings import RunnerSettings
from infra.template import TEMPLATE_PATH, StackContext, load_template
from shared.faces.settings import get_face_settings
from shared.platform.settings import PROJECT_ROOT
from shared.platform.storage import aws_client

LOCALSTACK_PYTHON = PROJECT_ROOT / "infra" / "localstack" / ".venv" / "bin" / "python"
LOCALSTACK_START = PROJECT_ROOT / "infra" / "localstack" / "start.py"  # LocalStack's entry point (its two speed changes)
LOCALSTACK_SERVICES = "s3,sqs,stepfunctions,events,sts,iam,cloudformation,lambda"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


class StackError(RuntimeError):
    pass


def localstack_url(settings: RunnerSettings) -> str:
    return f"http://127.0.0.1:{settings.localstack_port}"


def localstack_command() -> list[str]:
    if not LOCALSTACK_PYTHON.exists():
        raise StackError(f"LocalStack is not installed ({LOCALSTACK_PYTHON} is missing): run `make install`")
    return [str(LOCALSTACK_PYTHON), str(LOCALSTACK_START)]


def localstack_environment(settings: RunnerSettings) -> dict[str, str]:
    address = f"127.0.0.1:{settings.localstack_port}"
    data = settings.run_dir / "localstack"
    return {
        "GATEWAY_LISTEN": address,
        "GATEWAY_SERVER": "hypercorn",  # the default server binds 0.0.0.0 whatever it is told
        "LOCALSTACK_HOST": address,
        "SERVICES": LOCALSTACK_SERVICES,
        "DNS_ADDRESS": "0",
        "PERSISTENCE": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
        "FILESYSTEM_ROOT": str(data / "fs"),
        "LOCALSTACK_VOLUME_DIR": str(data / "volume"),
    }


def wait_for_localstack(settings: RunnerSettings, timeout: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    url = f"{localstack_url(settings)}/_localstack/health"
    while time.monotonic() < deadline:
        if not alive():
            raise StackError("LocalStack exited during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise StackError(f"LocalStack did not answer {url} within {timeout:.0f} s")


def template_body(template_path: Path = TEMPLATE_PATH) -> str:
    """template.yaml as CloudFormation JSON, each state machine's ``DefinitionUri`` (a file of
    the repository, which `sam deploy` uploads to S3) inlined as its ``Definition``."""
    template = load_template(template_path)
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::StateMachine" and isinstance(properties.get("DefinitionUri"), str):
            properties["Definition"] = json.loads((PROJECT_ROOT / properties.pop("DefinitionUri")).read_text())
    return json.dumps(template)


@dataclass(frozen=True)
class DeployedStack:
    context: StackContext
    outputs: dict[str, str]


def template_defaults(template_path: Path = TEMPLATE_PATH) -> dict[str, str]:
    """The template's parameters with a default, as CloudFormation passes them (strings)."""
    declared = load_template(template_path).get("Parameters", {})
    return {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}


def deploy_template(settings: RunnerSettings, template_path: Path = TEMPLATE_PATH, timeout: float = 120) -> DeployedStack:
    """Create the stack from template.yaml with Stage=local and wait for CREATE_COMPLETE."""
    cloudformation = aws_client("cloudformation", settings)
    parameters = {
        "Stage": "local",
        "QueueVisibilityTimeout": str(settings.task_lease_seconds),
        "MaxReceiveCount": str(settings.max_receive_count),
        "FaceInboxHide": get_face_settings().face_inbox_hide,  # VISIONFN_FACE_INBOX_HIDE, as the function reads it
    }
    cloudformation.create_stack(
        StackName=settings.stack_name,
        TemplateBody=template_body(template_path),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=settings.stack_name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise StackError(f"stack {settings.stack_name} still {stack['StackStatus']} after {timeout:.0f} s")
        time.sleep(0.1)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        events = cloudformation.describe_stack_events(StackName=settings.stack_name)["StackEvents"]
        reasons = [
            f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason')}"
            for event in events
            if event.get("ResourceStatus", "").endswith("FAILED")
        ]
        raise StackError(f"stack {stack['StackStatus']}: {stack.get('StackStatusReason')}; {reasons}")
    resources = cloudformation.describe_stack_resources(StackName=settings.stack_name)["StackResources"]
    account = aws_client("sts", settings).get_caller_identity()["Account"]
    context = StackContext(
        stack_name=settings.stack_name,
        region=settings.aws_region,
        account_id=account,
        # what this deploy passed over the template's defaults: describe_stacks may answer without
        # the parameters while LocalStack settles (a start-up that failed with "cannot resolve Ref Stage")
        parameters={**template_defaults(template_path), **parameters},
        physical_ids={item["LogicalResourceId"]: item["PhysicalResourceId"] for item in resources},
    )
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
    return DeployedStack(context=context, outputs=outputs)
