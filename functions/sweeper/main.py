"""Schedule (every minute): sends the outbox messages whose sender died before sending them
(a submission's job, a chain's execution start, a finished task's event), so no task waits for
a job that never comes, and sends again the job of a task left waiting without a message (lost:
deleted, purged). Locally it also removes presigned uploads no task took within a day
(template.yaml's lifecycle rule does that in the cloud; LocalStack applies no lifecycle rules).
At most once a minute it writes the depth of each dead-letter queue as a metric (dlq_depth) and
looks for lost jobs."""

import flask
from pydantic import BaseModel

from shared.health import emit_dead_letter_depths
from shared.platform.http import FunctionRoutes, get_direct_uploads
from shared.platform.logs import configure_logging
from shared.platform.messaging import Outbox
from shared.platform.schedule import Every
from shared.platform.settings import get_settings
from shared.platform.storage import aws_client
from shared.platform.tasks import TaskRepository

configure_logging("sweeper")
settings = get_settings()
outbox = Outbox.of_stack(settings, sfn=aws_client("stepfunctions", settings))
tasks = TaskRepository(outbox=outbox)
routes = FunctionRoutes()
every_minute = Every(60)


class SweepReport(BaseModel):
    relayed: int  # messages sent that had been left unsent
    jobs_resent: int  # jobs sent again whose message was lost
    unused_uploads_removed: int  # presigned uploads older than a day (locally)


@routes.schedule
def sweep() -> SweepReport:
    removed = get_direct_uploads().remove_unused() if settings.stage == "local" else 0
    resent = []
    if every_minute.due():
        emit_dead_letter_depths(settings)
        resent = tasks.resend_lost_jobs(settings.lost_job_seconds, settings.queue_prefix)
    relayed = outbox.relay(older_than_seconds=settings.outbox_grace_seconds)
    return SweepReport(relayed=relayed, jobs_resent=len(resent), unused_uploads_removed=removed)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)
