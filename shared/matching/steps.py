"""A chain's step as its tool's worker sees it: the job the state machine sends
(``sqs:sendMessage.waitForTaskToken``), and the worker's answers to the state machine."""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from shared.matching.settings import MatchingSettings
from shared.matching.tool import MatchTool
from shared.platform.tasks import TaskOut

log = logging.getLogger("visionfn.matching.steps")

#: SendTaskFailure's ``error`` for a step that ended in error (the state machine catches it).
STEP_FAILED = "Step.Failed"
MAX_CAUSE = 32_768  # Step Functions' limit on a failure's cause


def no_answer(settings: MatchingSettings) -> str:
    """The error of a step the state machine gave up on (its worker died or hung)."""
    return (f"The step's worker did not answer: no heartbeat for {settings.chain_step_heartbeat_seconds} s, "
            f"or over the step's {settings.chain_step_timeout_seconds} s; the chain went on")


class StepJob(BaseModel):
    """The body of a chain step's message: which step of which chain, and the token to answer."""

    model_config = ConfigDict(extra="forbid")

    chain: str = Field(pattern=r"^[0-9a-f]{32}$")
    step: int = Field(ge=1, le=10)
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
