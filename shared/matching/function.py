"""What every matching function is made of (one function per tool): its service and routes
are declared in ``functions/match_<tool>/main.py``."""

from __future__ import annotations

from shared.matching.defaults import ToolDefaults
from shared.matching.service import MatchService
from shared.matching.settings import get_matching_settings
from shared.matching.steps import StepAnswers
from shared.matching.tools import tool_class
from shared.platform.messaging import JobQueue, Outbox
from shared.platform.storage import aws_client, get_object_store
from shared.platform.tasks import TaskRepository
from shared.platform.work_processes import WorkProcesses


def match_service(tool_name: str) -> MatchService:
    settings = get_matching_settings()
    sqs = aws_client("sqs", settings)
    outbox = Outbox.of_stack(settings, sqs)
    return MatchService(
        tool_class(tool_name)(settings),
        get_object_store(),
        TaskRepository(outbox=outbox),
        ToolDefaults(),
        JobQueue(sqs, settings.job_queue_url),
        WorkProcesses(warm="shared.matching.tools"),
        settings,
        StepAnswers(aws_client("stepfunctions", settings)),
    )
