"""template.yaml is the one description: valid, and readable by the local runtime."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.template import TEMPLATE_PATH, StackContext, function_specs, load_template, rate_seconds
from tests.conftest import environment


@pytest.fixture(scope="module")
def specs():
    return {spec.name: spec for spec in function_specs(load_template())}


def test_template_passes_cfn_lint():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE_PATH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_function_has_its_source_and_entry_point(specs):
    assert {"health", "tasks", "thumbnail", "settings", "match_template", "match_feature", "match_surface"} <= set(specs)
    for spec in specs.values():
        assert spec.source.exists(), spec.source
        assert f"def {spec.target}(" in spec.source.read_text()


def test_routes_and_queue_triggers(specs):
    assert [(r.method, r.path) for r in specs["tasks"].routes] == [
        ("GET", "/api/v1/tasks"),
        ("GET", "/api/v1/tasks/{uid}"),
        ("GET", "/api/v1/tasks/{uid}/timeline"),
        ("GET", "/api/v1/files/{key+}"),
        ("POST", "/api/v1/uploads"),
    ]
    for tool in ("template", "feature", "surface"):
        spec = specs[f"match_{tool}"]
        assert [(r.method, r.path) for r in spec.routes] == [("POST", f"/api/v1/match/{tool}")]
        jobs, dead_jobs = spec.queues
        assert jobs.queue == f"{tool.capitalize()}JobsQueue" and jobs.batch_size == 1 and jobs.concurrency == 2
        assert dead_jobs.queue == f"{tool.capitalize()}JobsDLQ"
        assert spec.environment["VISIONFN_JOB_QUEUE_URL"] == {"Ref": jobs.queue}
    (trigger,) = specs["thumbnail"].queues
    assert trigger.queue == "ThumbnailQueue"
    assert trigger.report_batch_item_failures


def test_every_queue_has_a_dead_letter_queue():
    resources = load_template()["Resources"]
    queues = {name: r for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    for name, queue in queues.items():
        if name.endswith("DLQ"):
            continue
        target = queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert target in queues and target.endswith("DLQ"), name


def test_functions_stay_out_of_the_local_deployment():
    resources = load_template()["Resources"]
    for name, resource in resources.items():
        if resource["Type"].startswith("AWS::Serverless::Function") or resource["Type"].endswith("HttpApi"):
            assert resource.get("Condition") == "InCloud", name


def test_environment_resolution(specs):
    context = StackContext(
        stack_name="visionfn-local",
        region="us-east-1",
        account_id="000000000000",
        parameters={"Stage": "local"},
        physical_ids={"DataBucket": "visionfn-local-data-000000000000", "EventBus": "visionfn-local-bus"},
    )
    env = specs["health"].environment
    assert context.resolve(env["VISIONFN_BUCKET"]) == "visionfn-local-data-000000000000"
    assert context.resolve(env["VISIONFN_QUEUE_PREFIX"]) == "visionfn-local-"
    assert context.resolve(env["VISIONFN_STAGE"]) == "local"
    with pytest.raises(KeyError, match="NoSuchThing"):
        context.resolve({"Ref": "NoSuchThing"})
    with pytest.raises(ValueError):
        context.resolve({"Fn::Join": ["", ["a"]]})


def test_the_sweeper_runs_every_minute(specs):
    (sweep,) = specs["sweeper"].schedules
    assert sweep.every_seconds == 60


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
    ],
)
def test_rate_expressions(expression, seconds):
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["cron(0 12 * * ? *)", "rate(1 fortnight)", "rate(-1 minutes)"])
def test_other_schedules_are_refused_clearly(expression):
    with pytest.raises(ValueError, match="the local runtime runs rate"):
        rate_seconds(expression)


def test_every_route_of_the_template_is_in_the_openapi_document_and_back(specs):
    from shared.openapi import openapi_document

    document = openapi_document()
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    routes = {
        (route.method, route.path.replace("{key+}", "{key}"))
        for spec in specs.values()
        for route in spec.routes
        if not route.path.startswith(("/docs/", "/console/"))
    }  # the pages' asset files are not API
    assert routes == documented
    public = {(route.method, route.path) for spec in specs.values() for route in spec.routes if route.public}
    assert public == {
        ("GET", "/health"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/{asset}"),
        ("GET", "/"),
        ("GET", "/console/{file+}"),
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert (operation.get("security") == []) == ((method.upper(), path) in public), (method, path)


def _in_cloud(value):
    """A template value as deployed to AWS (``Fn::If`` on ``InCloud`` taken)."""
    if isinstance(value, dict) and "Fn::If" in value and value["Fn::If"][0] == "InCloud":
        return value["Fn::If"][1]
    return value


def test_in_the_cloud_every_queue_hides_a_message_at_least_as_long_as_its_consumer_may_run(specs):
    """Lambda refuses an SQS trigger whose queue's visibility timeout is shorter than the
    function's Timeout: the deployment would roll back."""
    resources = load_template()["Resources"]
    triggers = [(spec, trigger) for spec in specs.values() for trigger in spec.queues]
    assert len(triggers) >= 14
    for spec, trigger in triggers:
        visibility = _in_cloud(resources[trigger.queue]["Properties"].get("VisibilityTimeout", 30))
        assert int(visibility) >= spec.timeout, (spec.name, trigger.queue, visibility, spec.timeout)


def _allowed_actions(function: str) -> list[str]:
    """The actions a function's own policy statements allow (SAM's policy templates aside)."""
    return [
        action
        for policy in load_template()["Resources"][function]["Properties"]["Policies"]
        if "Statement" in policy
        for statement in policy["Statement"]
        for action in statement["Action"]
    ]


def test_workers_that_heartbeat_their_job_may_change_its_visibility():
    for function in ("FaceVideoFunction", "MatchTemplateFunction", "MatchFeatureFunction", "MatchSurfaceFunction"):
        actions = _allowed_actions(function)
        assert "sqs:ChangeMessageVisibility" in actions and "sqs:GetQueueUrl" in actions, function


def test_functions_that_count_queue_messages_may_list_and_read_the_queues():
    """/health's queue depths, and the sweeper's dead-letter metric and lost-job check: without
    these, in the cloud /health says error and the sweeper's checks fail (the sweeper had none)."""
    for function in ("HealthFunction", "SweeperFunction"):
        actions = _allowed_actions(function)
        assert {"sqs:ListQueues", "sqs:GetQueueAttributes"} <= set(actions), function
    assert "sqs:GetQueueUrl" in _allowed_actions("SweeperFunction")  # a queue's dead-letter queue, from its ARN


def test_the_images_the_template_builds_carry_the_face_models_make_images_gives_them():
    """`sam build` (DockerBuildArgs MODELS) and `make images` (infra/images.py) put the face models
    into the same images: the two lists are kept apart, this keeps them equal."""
    from infra.images import FACE_MODEL_FUNCTIONS

    resources = load_template()["Resources"]
    built = {
        resource["Metadata"]["DockerBuildArgs"]["FUNCTION"]: resource["Metadata"]["DockerBuildArgs"].get("MODELS", "faces")
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert len(built) == 19
    assert {name for name, models in built.items() if models == "faces"} == FACE_MODEL_FUNCTIONS


class FakeCloudFormation:
    """CloudFormation (and STS) as deploy_template calls them: the stack created at once, the
    parameters it was given recorded; describe_stacks answers without them, as LocalStack once did."""

    parameters: dict[str, str]

    def create_stack(self, **kwargs):
        self.parameters = {item["ParameterKey"]: item["ParameterValue"] for item in kwargs["Parameters"]}

    def describe_stacks(self, **_kwargs):
        return {"Stacks": [{"StackStatus": "CREATE_COMPLETE", "Outputs": []}]}  # no "Parameters"

    def describe_stack_resources(self, **_kwargs):
        return {"StackResources": []}

    def get_caller_identity(self):
        return {"Account": "000000000000"}


@pytest.fixture
def cloudformation(monkeypatch):
    from infra import stack

    fake = FakeCloudFormation()
    monkeypatch.setattr(stack, "aws_client", lambda _service, _settings: fake)
    return fake


def test_the_stack_resolves_refs_with_the_parameters_its_deploy_passed_even_when_describe_stacks_omits_them(cloudformation):
    """The start-up flake: LocalStack's describe_stacks answered once without Parameters, and the
    runner failed with "cannot resolve Ref Stage"."""
    from infra import stack
    from infra.settings import RunnerSettings

    deployed = stack.deploy_template(RunnerSettings(task_lease_seconds=7, max_receive_count=3))
    assert deployed.context.parameters["Stage"] == "local"
    assert deployed.context.parameters["QueueVisibilityTimeout"] == "7" and deployed.context.parameters["MaxReceiveCount"] == "3"
    assert deployed.context.parameters["ImageTag"] == "latest"  # a template default


def test_what_the_inbox_hides_is_a_parameter_of_the_deploy_that_the_face_function_reads(specs, cloudformation):
    """Deployed, VISIONFN_FACE_INBOX_HIDE can only come from the template (a container gets the
    template's variables, not the host's): the FaceInboxHide parameter, which `make up` passes
    from the same setting."""
    from infra import stack
    from infra.settings import RunnerSettings

    template = load_template()
    assert template["Parameters"]["FaceInboxHide"]["Default"] == "faces"
    pattern = re.compile(template["Parameters"]["FaceInboxHide"]["AllowedPattern"])
    assert all(pattern.match(value) for value in ("faces", "faces,numbers", "faces,numbers,text", "text"))
    assert not any(pattern.match(value) for value in ("", "faces,", "plates", "faces;text"))
    face_process = specs["face_process"]
    assert face_process.environment["VISIONFN_FACE_INBOX_HIDE"] == {"Ref": "FaceInboxHide"}

    with environment(VISIONFN_FACE_INBOX_HIDE="numbers,faces"):
        deployed = stack.deploy_template(RunnerSettings())
    assert cloudformation.parameters["FaceInboxHide"] == "faces,numbers"
    assert deployed.context.resolve(face_process.environment["VISIONFN_FACE_INBOX_HIDE"]) == "faces,numbers"
