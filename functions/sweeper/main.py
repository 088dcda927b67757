"""Schedule (every minute): sends the outbox messages whose sender died before sending them
(a submission's job, a chain's execution start, a finished task's event), so no task waits for
a job that never comes. Locally it also removes presigned uploads no task took within a day
(template.yaml's lifecycle rule does that in the cloud; LocalStack applies no lifecycle rules).
At most once a minute it writes the depth of each dead-letter queue as a metric (dlq_depth)."""

import flask
from pydantic import BaseModel

from shared.health import DeadLetterDepths
from shared.platform.http import FunctionRoutes, get_direct_uploads
from shared.platform.logs import configure_logging
from shared.platform.messaging import Outbox
from shared.platform.settings import get_settings
from shared.platform.storage import aws_client

configure_logging("sweeper")
settings = get_settings()
outbox = Outbox.of_stack(settings, sfn=aws_client("stepfunctions", settings))
routes = FunctionRoutes()


dead_letter_depths = DeadLetterDepths(settings, every_seconds=60)


class SweepReport(BaseModel):
    relayed: int  # messages sent that had been left unsent
    unused_uploads_removed: int  # presigned uploads older than a day (locally)


@routes.schedule
def sweep() -> SweepReport:
    removed = get_direct_uploads().remove_unused() if settings.stage == "local" else 0
    dead_letter_depths.emit_when_due()
    return SweepReport(relayed=outbox.relay(older_than_seconds=settings.outbox_grace_seconds), unused_uploads_removed=removed)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)
