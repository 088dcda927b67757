"""Chain matching on the real stack: gateway -> match_chain -> Step Functions (LocalStack) ->
the tools' job queues -> workers (task tokens, heartbeats) -> chain queue -> the chain's result."""

import io
import json
import os
import signal
import uuid

from PIL import Image

from shared.matching.chain import execution_input
from shared.matching.settings import MatchingSettings
from shared.matching.tools import tool_class
from shared.platform.faults import WORK_SECONDS_METADATA
from shared.platform.messaging import Outbox
from shared.platform.storage import ObjectStore
from shared.platform.tasks import Execution, TaskRepository
from tests.conftest import shared_data
from tests.integration.conftest import wait_for
from tests.integration.test_runtime import _descendants, _processes

MESSI = "matching/opencv_samples/messi5.jpg"
BOX = "matching/opencv_samples/box.png"
BOX_IN_SCENE = "matching/opencv_samples/box_in_scene.png"
MISS = {"tool": "template", "params": {"threshold": 0.995}}  # box is turned and scaled in its scene: no match
FEATURE = {"tool": "feature", "params": {"detector": "SIFT", "ratio_threshold": 0.7}}
TEST_CHAIN_SETTINGS = MatchingSettings(chain_step_heartbeat_seconds=10, chain_step_timeout_seconds=120)  # as the platform fixture


def _crop(data: bytes, box=(200, 50, 260, 110)) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).crop(box).save(buffer, format="PNG")
    return buffer.getvalue()


def _submit(platform, steps, image: bytes, template: bytes):
    return platform.http.post(
        f"{platform.gateway}/api/v1/match/chain",
        files={"image": ("image.png", image), "template": ("template.png", template)},
        data={"steps": steps if isinstance(steps, str) else json.dumps(steps)},
        timeout=30,
    )


def _finished(platform, uid: str, timeout: float = 120) -> dict:
    def finished():
        task = platform.http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=10).json()
        return task if task["status"] in ("done", "error") else None

    return wait_for(finished, timeout=timeout, interval=0.2)


def _statuses(chain: dict) -> list[tuple[str, bool]]:
    return [(step["status"], step["found"]) for step in chain["result_data"]["steps"]]


def test_a_chain_found_at_step_1_skips_the_rest(platform):
    answer = _submit(platform, [{"tool": "template"}, FEATURE], shared_data(MESSI), _crop(shared_data(MESSI)))
    assert answer.status_code == 201, answer.text
    submitted = answer.json()
    assert (submitted["tool"], submitted["status"]) == ("chain", "queued")
    assert submitted["execution_arn"].endswith(f":{submitted['uid']}")
    chain = _finished(platform, submitted["uid"])
    assert chain["status"] == "done", chain
    result = chain["result_data"]
    assert (result["chain_result"], result["completed_step"], result["total_steps"]) == ("found", 1, 2)
    assert _statuses(chain) == [("done", True), ("skipped", False)]
    first = result["steps"][0]
    assert first["tool"] == "template" and first["params"]["method"] == "TM_CCOEFF_NORMED"  # defaulted
    assert first["result_data"]["filtered_matches"] >= 1
    assert sorted(first["result_files"]) == [f"results/{chain['uid']}/step-1/heatmap.png", f"results/{chain['uid']}/step-1/matches.png"]
    picture = platform.http.get(f"{platform.gateway}/api/v1/files/{first['result_files'][0]}", timeout=10)
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    # the steps are the chain's: not tasks of their own in the owner's list
    listed = platform.http.get(f"{platform.gateway}/api/v1/tasks?limit=200", timeout=10).json()["tasks"]
    assert {task["tool"] for task in listed if task["created_at"] >= chain["created_at"]} <= {"chain", "template", "feature", "surface"}
    assert all(task["uid"] != chain["uid"] or task["tool"] == "chain" for task in listed)


def test_a_chain_found_at_step_3_after_two_misses(platform):
    answer = _submit(platform, [MISS, {**MISS, "params": {"threshold": 0.99}}, FEATURE], shared_data(BOX_IN_SCENE), shared_data(BOX))
    assert answer.status_code == 201, answer.text
    chain = _finished(platform, answer.json()["uid"])
    assert chain["status"] == "done", chain
    assert _statuses(chain) == [("done", False), ("done", False), ("done", True)]
    result = chain["result_data"]
    assert (result["chain_result"], result["completed_step"]) == ("found", 3)
    assert result["steps"][0]["result_data"]["filtered_matches"] == 0
    assert result["steps"][2]["result_data"]["good_matches"] > 0
    assert result["steps"][1]["params"]["threshold"] == 0.99


def test_a_chain_with_no_match_is_not_found(platform):
    answer = _submit(platform, [MISS, MISS], shared_data(BOX_IN_SCENE), shared_data(BOX))
    chain = _finished(platform, answer.json()["uid"])
    assert chain["status"] == "done", chain
    assert (chain["result_data"]["chain_result"], chain["result_data"]["completed_step"]) == ("not_found", 2)
    assert _statuses(chain) == [("done", False), ("done", False)]


def test_a_step_that_fails_is_an_error_and_the_chain_goes_on(platform):
    # images are no point clouds: the surface step fails, the template step after it finds
    answer = _submit(platform, [{"tool": "surface"}, {"tool": "template"}], shared_data(MESSI), _crop(shared_data(MESSI)))
    assert answer.status_code == 201, answer.text
    chain = _finished(platform, answer.json()["uid"])
    assert chain["status"] == "done", chain
    assert _statuses(chain) == [("error", False), ("done", True)]
    failed = chain["result_data"]["steps"][0]
    assert "ply" in failed["error"].lower(), failed
    assert failed["result_data"] is None and failed["result_files"] == []


def test_a_chain_whose_every_step_fails_ends_in_error(platform):
    # the template is larger than the image: each template step fails when it runs
    answer = _submit(platform, [{"tool": "template"}, MISS], shared_data(BOX), shared_data(BOX_IN_SCENE))
    chain = _finished(platform, answer.json()["uid"])
    assert chain["status"] == "error" and chain["error"].startswith("Every step failed"), chain
    assert _statuses(chain) == [("error", False), ("error", False)]
    assert "larger than the image" in chain["result_data"]["steps"][1]["error"]


def test_a_worker_killed_mid_chain_costs_its_step_at_most(platform, aws, database_url):
    """GIVEN a chain (template: a miss, then feature: a find) whose steps last 4 s longer than
    their matching (fault injection), WHEN the worker process running step 1 is killed with
    SIGKILL, THEN the chain still reaches `done`: step 1 is either redone (redelivered to the
    restarted worker) or an `error` step (no heartbeat), and step 2 runs and finds the match."""
    outputs, sqs = platform.state["outputs"], aws("sqs")
    tasks = TaskRepository(database_url, Outbox(sqs, aws("events"), outputs["EventBusName"], database_url, sfn=aws("stepfunctions")))
    store = ObjectStore(platform.state["bucket"], aws("s3"))
    uid = uuid.uuid4().hex
    steps = [
        {"tool": "template", "params": {**tool_class("template").params_model().model_dump(), "threshold": 0.995}},
        {"tool": "feature", "params": tool_class("feature").params_model().model_dump()},
    ]
    execution = Execution(
        outputs["ChainStateMachineArn"],
        execution_input(uid, [outputs["TemplateJobsQueueUrl"], outputs["FeatureJobsQueueUrl"]], TEST_CHAIN_SETTINGS),
    )
    keys = [f"uploads/{uid}/scene.png", f"uploads/{uid}/box.png"]
    tasks.create("chain", {"steps": steps}, keys, uid=uid, owner="local", execution=execution)
    for key, data in zip(keys, (shared_data(BOX_IN_SCENE), shared_data(BOX)), strict=True):
        store.put(key, data, metadata={WORK_SECONDS_METADATA: "4"})
    tasks.dispatch(uid)

    wait_for(lambda: tasks.steps_of(uid).get(1) and tasks.steps_of(uid)[1].status == "processing", timeout=60)
    master = _processes(platform)["match_template"]["pid"]
    for pid in _descendants(master, depth=1):  # gunicorn's worker; its work process follows it
        os.kill(pid, signal.SIGKILL)

    chain = _finished(platform, uid, timeout=180)
    assert chain["status"] == "done", chain
    first, second = chain["result_data"]["steps"]
    if first["status"] == "done":
        assert not first["found"] and tasks.steps_of(uid)[1].attempts >= 2  # redone after the kill
    else:
        assert first["status"] == "error" and "did not answer" in first["error"], first
    assert (second["status"], second["found"]) == ("done", True)


def test_hostile_chain_submissions_get_a_clear_4xx_and_leave_no_task(platform):
    before = platform.http.get(f"{platform.gateway}/api/v1/tasks?limit=1", timeout=10).json()["total"]
    image, template = shared_data(MESSI), _crop(shared_data(MESSI))
    cases = {
        "not json": ("[{", 422, "steps"),
        "empty": ("[]", 422, "steps"),
        "eleven": (json.dumps([{"tool": "template"}] * 11), 422, "steps"),
        "unknown tool": (json.dumps([{"tool": "ocr"}]), 422, "tool"),
        "bad parameter": (json.dumps([{"tool": "template", "params": {"threshold": 7}}]), 422, "threshold"),
        "unknown parameter": (json.dumps([{"tool": "feature", "params": {"colour": 1}}]), 422, "colour"),
        "not a list": (json.dumps({"tool": "template"}), 422, "steps"),
        "deep": ("[" * 5000 + "]" * 5000, 422, "steps"),
    }
    for name, (steps, status, mentioned) in cases.items():
        answer = _submit(platform, steps, image, template)
        assert answer.status_code == status, (name, answer.text)
        assert mentioned in answer.text, (name, answer.text)
    answer = platform.http.post(
        f"{platform.gateway}/api/v1/match/chain",
        files={"image": ("a.png", image)},
        data={"steps": json.dumps([{"tool": "template"}])},
        timeout=30,
    )
    assert answer.status_code == 422 and '"template"' in answer.text
    answer = _submit(platform, [{"tool": "template"}], b"\x89PNG\r\n\x1a\n" + b"\0" * 100, template)
    assert answer.status_code == 400 and "image" in answer.json()["detail"], answer.text
    answer = _submit(platform, [{"tool": "surface"}], image, template)  # no step can read images as PLY
    assert answer.status_code == 400 and "PLY" in answer.json()["detail"], answer.text
    assert platform.http.get(f"{platform.gateway}/api/v1/tasks?limit=1", timeout=10).json()["total"] == before
    assert platform.http.post(f"{platform.gateway}/api/v1/match/chain", timeout=10).status_code == 422
    assert platform.http.get(f"{platform.gateway}/api/v1/tasks?limit=1", timeout=10).json()["total"] == before


def test_a_chain_whose_execution_is_stopped_ends_in_error(platform, aws, database_url):
    """GIVEN a running chain, WHEN its execution is stopped (as an operator or a failure would),
    THEN match_chain's schedule finalizes it: `error`, the step that ran kept, the rest not run."""
    outputs, sfn = platform.state["outputs"], aws("stepfunctions")
    tasks = TaskRepository(database_url, Outbox(aws("sqs"), aws("events"), outputs["EventBusName"], database_url, sfn=sfn))
    store = ObjectStore(platform.state["bucket"], aws("s3"))
    uid = uuid.uuid4().hex
    miss = {**tool_class("template").params_model().model_dump(), "threshold": 0.995}
    execution = Execution(outputs["ChainStateMachineArn"], execution_input(uid, [outputs["TemplateJobsQueueUrl"]] * 3, TEST_CHAIN_SETTINGS))
    keys = [f"uploads/{uid}/scene.png", f"uploads/{uid}/box.png"]
    tasks.create("chain", {"steps": [{"tool": "template", "params": miss}] * 3}, keys, uid=uid, owner="local", execution=execution)
    for key, data in zip(keys, (shared_data(BOX_IN_SCENE), shared_data(BOX)), strict=True):
        store.put(key, data, metadata={WORK_SECONDS_METADATA: "3"})
    tasks.dispatch(uid)

    wait_for(lambda: 2 in tasks.steps_of(uid), timeout=60)  # step 1 done, step 2 started
    sfn.stop_execution(executionArn=execution.arn(uid), error="Operator.Stopped", cause="stopped by the test")

    chain = _finished(platform, uid, timeout=120)
    # AWS reports a stopped execution ABORTED; LocalStack fails the waiting step with States.Timeout
    assert chain["status"] == "error" and chain["error"].startswith("The chain stopped: its execution"), chain
    assert "ABORTED" in chain["error"] or "FAILED (States.Timeout" in chain["error"], chain
    first, second, third = chain["result_data"]["steps"]
    assert (first["status"], first["found"]) == ("done", False)
    assert second["status"] == "error" and third["status"] == "error" and "Not run" in third["error"]


def test_a_chain_whose_submitter_died_before_starting_it_is_started_by_the_sweeper(platform, aws, database_url):
    """GIVEN a chain whose row, inputs and execution start are committed but whose submitter died
    before starting it (the start left unsent in the outbox), THEN the sweeper starts it and the
    chain ends `done`."""
    outputs = platform.state["outputs"]
    tasks = TaskRepository(database_url, Outbox(aws("sqs"), aws("events"), outputs["EventBusName"], database_url, sfn=aws("stepfunctions")))
    store = ObjectStore(platform.state["bucket"], aws("s3"))
    uid = uuid.uuid4().hex
    execution = Execution(outputs["ChainStateMachineArn"], execution_input(uid, [outputs["TemplateJobsQueueUrl"]], TEST_CHAIN_SETTINGS))
    keys = [f"uploads/{uid}/image.jpg", f"uploads/{uid}/template.png"]
    steps = [{"tool": "template", "params": tool_class("template").params_model().model_dump()}]
    tasks.create("chain", {"steps": steps}, keys, uid=uid, owner="local", execution=execution)
    for key, data in zip(keys, (shared_data(MESSI), _crop(shared_data(MESSI))), strict=True):
        store.put(key, data)
    # no dispatch: the submitter "died" here

    chain = _finished(platform, uid, timeout=120)
    assert chain["status"] == "done" and chain["result_data"]["chain_result"] == "found", chain
    assert "relayed execution" in platform.log("sweeper")
