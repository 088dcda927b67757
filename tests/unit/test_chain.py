"""The chain's steps (validated once, typed after), its result from its trail and its steps'
tasks (pure), and the step messages."""

import json
from datetime import UTC, datetime
from typing import get_args

import pytest
from pydantic import ValidationError

from shared.matching.chain import NEVER_DELIVERED, ChainFinished, ChainForm, ChainService, chain_result, trail_of
from shared.matching.feature import FeatureParams
from shared.matching.service import JOB
from shared.matching.steps import MAX_STEPS, STEPS, ChainParams, ChainStep, StepJob, read_steps
from shared.matching.surface import SurfaceParams
from shared.matching.template import TemplateParams
from shared.matching.tools import TOOLS, ToolName
from shared.platform.errors import RequestValidationFailed
from shared.platform.task_jobs import TaskJob
from shared.platform.tasks import TaskOut, step_uid

NO_ANSWER = "no answer"
#: As a chain stores its steps: every parameter resolved.
STEPS_SPEC = [
    {"tool": "template", "params": TemplateParams(threshold=0.9).model_dump()},
    {"tool": "template", "params": TemplateParams(threshold=0.7).model_dump()},
    {"tool": "feature", "params": FeatureParams(detector="SIFT").model_dump()},
]
CHAIN_STEPS = ChainParams.model_validate({"steps": STEPS_SPEC}).steps
NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _task(step: int, status: str, result_data=None, error=None) -> TaskOut:
    tool = STEPS_SPEC[step - 1]["tool"]
    return TaskOut(
        uid=step_uid("c" * 32, step),
        owner="o",
        status=status,
        tool=tool,
        params={},
        created_at=NOW,
        updated_at=NOW,
        input_files=[],
        thumbnails=[],
        result_files=[f"results/c/step-{step}/m.png"] if status == "done" else [],
        result_data=result_data,
        error=error,
        attempts=1,
        parent_uid="c" * 32,
        step=step,
    )


MISS = {"filtered_matches": 0}
HIT = {"filtered_matches": 2}


@pytest.mark.parametrize(
    ("opened", "stopped", "expected"),
    [
        # found at step 2: step 3 skipped
        (
            {1: _task(1, "done", MISS), 2: _task(2, "done", HIT)},
            None,
            ("done", "found", 2, [("done", False), ("done", True), ("skipped", False)]),
        ),
        # nothing found
        (
            {1: _task(1, "done", MISS), 2: _task(2, "done", MISS), 3: _task(3, "done", {"good_matches": 0})},
            None,
            ("done", "not_found", 3, [("done", False)] * 3),
        ),
        # a failed step, then a find
        (
            {1: _task(1, "error", error="bad input"), 2: _task(2, "done", HIT)},
            None,
            ("done", "found", 2, [("error", False), ("done", True), ("skipped", False)]),
        ),
        # every step run failed
        (
            {1: _task(1, "error", error="x"), 2: _task(2, "error", error=NO_ANSWER), 3: _task(3, "error", error="y")},
            None,
            ("error", "not_found", 3, [("error", False)] * 3),
        ),
        # the execution failed after step 1: the rest were not run
        (
            {1: _task(1, "done", MISS)},
            "its execution FAILED",
            ("error", "not_found", 1, [("done", False), ("error", False), ("error", False)]),
        ),
        # ... but a find before it stands
        (
            {1: _task(1, "done", HIT)},
            "its execution FAILED",
            ("done", "found", 1, [("done", True), ("skipped", False), ("skipped", False)]),
        ),
    ],
)
def test_chain_result(opened, stopped, expected):
    status, result, _error = chain_result(CHAIN_STEPS, opened, stopped)
    assert (status, result.chain_result, result.completed_step, [(step.status, step.found) for step in result.steps]) == expected
    assert result.total_steps == 3
    assert [step.params for step in result.steps] == [spec["params"] for spec in STEPS_SPEC]


def test_an_error_step_says_why():
    _, result, error = chain_result(
        CHAIN_STEPS, {1: _task(1, "error", error="not a PLY file"), 2: _task(2, "error", error=NO_ANSWER)}, "its execution TIMED_OUT"
    )
    assert [step.error for step in result.steps] == ["not a PLY file", NO_ANSWER, "Not run: its execution TIMED_OUT"]
    assert error == "The chain stopped: its execution TIMED_OUT"
    assert [step.result_files for step in result.steps] == [[], [], []]


def test_the_trail_as_the_steps_tell_it():
    assert trail_of(CHAIN_STEPS, {}) == ""
    assert trail_of(CHAIN_STEPS, {1: _task(1, "done", MISS), 2: _task(2, "error")}) == "ne"
    assert trail_of(CHAIN_STEPS, {1: _task(1, "done", HIT), 2: _task(2, "done", HIT)}) == "f"
    assert trail_of(CHAIN_STEPS, {1: _task(1, "processing")}) == "e"
    assert trail_of(CHAIN_STEPS, {2: _task(2, "done", HIT)}) == "ef"
    assert trail_of(CHAIN_STEPS, {1: _task(1, "done", MISS), 3: _task(3, "done", {"good_matches": 0})}) == "nen"


def test_a_step_the_state_machine_went_past_before_a_worker_got_it_is_an_error_step():
    """Step 1's job never sent (the emulator failed its Task state, Catch went on): the chain
    reports step 1 as an error and step 2's find after it, not an empty trail."""
    status, result, error = chain_result(CHAIN_STEPS, {2: _task(2, "done", HIT)})
    assert (status, result.chain_result, result.completed_step, error) == ("done", "found", 2, None)
    assert [(step.status, step.found) for step in result.steps] == [("error", False), ("done", True), ("skipped", False)]
    assert result.steps[0].error == NEVER_DELIVERED
    assert result.steps[1].result_files == ["results/c/step-2/m.png"]


@pytest.mark.parametrize(
    "steps",
    [
        "[]",
        "{}",
        '[{"tool": "ocr"}]',
        '[{"tool": "template", "extra": 1}]',
        '[{"tool": "template"}]' * 2,
        "[" + ",".join(['{"tool": "feature"}'] * 11) + "]",
    ],
)
def test_bad_steps_are_refused(steps):
    with pytest.raises(ValidationError):
        STEPS.validate_json(steps)


# --- the steps: validated once, where the form is read; typed after ----------------------------

OWNER_DEFAULTS = {
    "template": TemplateParams(threshold=0.5, max_results=3),
    "feature": FeatureParams(detector="ORB"),
    "surface": SurfaceParams(),
}


class _StoredDefaults:
    """ToolDefaults as the chain asks it: the owner's defaults of every tool."""

    def of_owner(self, owner):
        assert owner == "o"
        return OWNER_DEFAULTS


def _read_form(steps: list) -> list[ChainStep]:
    """What POST /api/v1/match/chain makes of its ``steps`` field (422: RequestValidationFailed)."""
    service = ChainService(None, None, _StoredDefaults(), None, None)
    return service._validated_steps("o", {"steps": json.dumps(steps)}, {"image": object(), "template": object()})


def test_a_steps_parameters_are_its_tools_model_given_over_the_owners_defaults():
    steps = _read_form(
        [{"tool": "template", "params": {"threshold": 0.9}}, {"tool": "feature"}, {"tool": "surface", "params": {"num_angles": 12}}]
    )
    assert [type(step.params) for step in steps] == [TemplateParams, FeatureParams, SurfaceParams]
    assert steps[0].params == TemplateParams(threshold=0.9, max_results=3)  # given, then stored, then built-in
    assert steps[1].params == FeatureParams(detector="ORB")
    assert steps[2].params == SurfaceParams(num_angles=12)
    assert STEPS.validate_json('[{"tool": "feature"}]')[0].params == FeatureParams()  # no owner's: the built-in ones
    assert read_steps('[{"tool": "feature"}]', OWNER_DEFAULTS) == steps[1:2]


def test_stored_steps_are_the_dump_of_the_validated_ones_and_read_back_alike():
    steps = _read_form([{"tool": "template"}, {"tool": "feature", "params": {"matcher": "BFMatcher"}}])
    stored = json.loads(json.dumps(ChainParams(steps=steps).model_dump()))  # the chain task's JSON params
    assert stored == {
        "steps": [
            {"tool": "template", "params": TemplateParams(threshold=0.5, max_results=3).model_dump()},
            {"tool": "feature", "params": FeatureParams(detector="ORB", matcher="BFMatcher").model_dump()},
        ]
    }
    assert ChainParams.model_validate(stored).steps == steps


@pytest.mark.parametrize(
    ("steps", "problems"),
    [
        ([{"tool": "template", "params": {"threshold": 7}}], [("less_than_equal", ["body", "steps", 0, "params", "threshold"])]),
        (
            [{"tool": "template"}, {"tool": "feature", "params": {"colour": 1}}],
            [("extra_forbidden", ["body", "steps", 1, "params", "colour"])],
        ),
        ([{"tool": "ocr", "params": {"colour": 1}}], [("literal_error", ["body", "steps", 0, "tool"])]),  # no tool: no judging its params
        ([{"tool": "template", "params": 3}], [("dict_type", ["body", "steps", 0, "params"])]),
        ([{"tool": "feature", "extra": 1}], [("extra_forbidden", ["body", "steps", 0, "extra"])]),
        ([], [("too_short", ["body", "steps"])]),
        (
            [{"tool": "template", "params": {"threshold": 7}}, {"params": {}}],  # every problem in one answer
            [("less_than_equal", ["body", "steps", 0, "params", "threshold"]), ("missing", ["body", "steps", 1, "tool"])],
        ),
    ],
)
def test_bad_steps_are_one_422_located_in_the_form(steps, problems):
    with pytest.raises(RequestValidationFailed) as refused:
        _read_form(steps)
    assert [(item["type"], item["loc"]) for item in refused.value.detail] == problems
    assert all({"type", "loc", "msg", "input"} <= item.keys() for item in refused.value.detail)


def test_a_typed_step_takes_only_its_tools_parameters():
    assert ChainStep(tool="template", params=TemplateParams(threshold=0.9)).params.threshold == 0.9
    with pytest.raises(ValidationError):
        ChainStep(tool="template", params=FeatureParams())


def test_the_tools_are_named_once():
    assert get_args(ToolName) == tuple(TOOLS)
    assert all(f'"{name}"' in ChainForm.model_fields["steps"].description for name in TOOLS)
    assert STEPS.validate_python([{"tool": "template"}] * MAX_STEPS)
    with pytest.raises(ValidationError):
        JOB.validate_json(f'{{"chain": "{"a" * 32}", "step": {MAX_STEPS + 1}, "task_token": "t"}}')


def test_jobs_and_step_messages_are_told_apart():
    uid = "a" * 32
    assert JOB.validate_json(f'{{"uid": "{uid}"}}') == TaskJob(uid=uid)
    step = JOB.validate_json(f'{{"chain": "{uid}", "step": 2, "task_token": "t"}}')
    assert isinstance(step, StepJob) and step.step == 2
    for body in (f'{{"uid": "{uid}", "task_token": "t"}}', f'{{"chain": "{uid}", "step": 0, "task_token": "t"}}', "{}"):
        with pytest.raises(ValidationError):
            JOB.validate_json(body)
    with pytest.raises(ValidationError):
        ChainFinished.model_validate_json(f'{{"uid": "{uid}", "trail": "nx"}}')
    assert ChainFinished.model_validate_json(f'{{"uid": "{uid}"}}').uid == uid
    assert step_uid(uid, 1) != step_uid(uid, 2) and len(step_uid(uid, 1)) == 32


def test_the_execution_input_is_a_list_walked_step_by_step():
    from shared.matching.chain import execution_input
    from shared.matching.settings import MatchingSettings

    walked = execution_input("u", ["q1", "q2", "q3"], MatchingSettings(chain_step_heartbeat_seconds=7))
    assert walked["step_heartbeat_seconds"] == 7
    steps, node = [], walked["next"]
    while node:
        steps.append((node["step"], node["queue_url"]))
        node = node.get("next")
    assert steps == [(1, "q1"), (2, "q2"), (3, "q3")]
