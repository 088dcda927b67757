"""A chain's step: what it is (a tool and that tool's parameters, validated once where the steps
arrive), the job the state machine sends its tool's worker (``sqs:sendMessage.waitForTaskToken``),
and the worker's answers to the state machine."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Annotated, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticKnownError

from shared.matching.defaults import over_defaults
from shared.matching.settings import MatchingSettings
from shared.matching.tool import MatchTool, ToolParams
from shared.matching.tools import TOOLS, ToolName
from shared.platform.tasks import TaskOut

log = logging.getLogger("visionfn.matching.steps")

MAX_STEPS = 10
#: SendTaskFailure's ``error`` for a step that ended in error (the state machine catches it).
STEP_FAILED = "Step.Failed"
MAX_CAUSE = 32_768  # Step Functions' limit on a failure's cause
#: The validation context's key for the defaults a step's missing parameters take: ``{tool: ToolParams}``.
DEFAULTS = "defaults"


def no_answer(settings: MatchingSettings) -> str:
    """The error of a step the state machine gave up on (its worker died or hung)."""
    return (
        f"The step's worker did not answer: no heartbeat for {settings.chain_step_heartbeat_seconds} s, "
        f"or over the step's {settings.chain_step_timeout_seconds} s; the chain went on"
    )


class ChainStep(BaseModel):
    """One step of a chain: a tool and that tool's parameters (an instance of its ``params_model``).

    Validated once, where the ``steps`` field arrives: the parameters given go over the defaults
    in the validation context (``read_steps``: the owner's stored ones, see defaults.py), or
    over the built-in ones without it. Stored as ``model_dump()`` in the chain's params and read
    back with ``model_validate`` (``ChainParams``); the step's task gets the same dump.

    Not a discriminated union of one model per tool: pydantic puts the tag in every error's
    location (``[0, "template", "params", "threshold"]``) where the chain's 422s have always
    said ``["body", "steps", 0, "params", "threshold"]``, and an unknown tool would stop being a
    ``literal_error`` at ``[..., "tool"]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: ToolName
    params: SerializeAsAny[ToolParams] = Field(default_factory=dict, validate_default=True)

    @field_validator("params", mode="plain")
    @classmethod
    def _as_the_tools(cls, given: Any, info: ValidationInfo) -> Any:
        """``given`` as the named tool's parameters, over the defaults (see the class)."""
        tool = info.data.get("tool")
        if tool is None:
            return given  # the tool is not one: that is the step's error, the parameters cannot be judged
        model = TOOLS[tool].params_model
        if isinstance(given, model):
            return given
        if not isinstance(given, dict):
            raise PydanticKnownError("dict_type")
        defaults: Mapping[str, ToolParams] = (info.context or {}).get(DEFAULTS, {})
        return model.model_validate(over_defaults(defaults.get(tool) or model(), given))


#: The ``steps`` field of POST /api/v1/match/chain.
Steps = Annotated[list[ChainStep], Field(min_length=1, max_length=MAX_STEPS)]
STEPS: TypeAdapter[list[ChainStep]] = TypeAdapter(Steps)


def read_steps(text: str, defaults: Mapping[str, ToolParams]) -> list[ChainStep]:
    """The ``steps`` field (JSON) as steps whose missing parameters take ``defaults`` (by tool);
    raises pydantic's ValidationError with every problem (locations from the list: ``[0, "params", ...]``)."""
    return STEPS.validate_json(text, context={DEFAULTS: defaults})


class ChainParams(BaseModel):
    """A chain task's ``params``, as stored and read back: its steps, every parameter resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: Steps


class StepJob(BaseModel):
    """The body of a chain step's message: which step of which chain, and the token to answer."""

    model_config = ConfigDict(extra="forbid")

    chain: str = Field(pattern=r"^[0-9a-f]{32}$")
    step: int = Field(ge=1, le=MAX_STEPS)
    task_token: str = Field(min_length=1, max_length=4096)


class StepAnswers:
    """SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat. An answer the state machine no
    longer waits for (the step timed out, the execution ended) is logged and dropped."""

    def __init__(self, sfn: Any) -> None:
        self.sfn = sfn

    def answer(self, token: str, step: TaskOut, tool: type[MatchTool]) -> None:
        """Tell the state machine how a finished step went; nothing while it is unfinished."""
        if step.status == "done":
            self._send("send_task_success", taskToken=token, output=json.dumps({"found": tool.found(step.result_data)}))
        elif step.status == "error":
            self.fail(token, step.error or "The step failed")

    def fail(self, token: str, cause: str) -> None:
        self._send("send_task_failure", taskToken=token, error=STEP_FAILED, cause=cause[:MAX_CAUSE])

    def heartbeat(self, token: str) -> None:
        self._send("send_task_heartbeat", taskToken=token)

    def _send(self, call: str, **arguments: Any) -> None:
        try:
            getattr(self.sfn, call)(**arguments)
        except (BotoCoreError, ClientError) as error:
            log.warning("%s not taken by the state machine: %s", call, error)
