"""Schedule (every minute): sends the outbox messages whose sender died before sending them
(a submission's job, a chain's execution start, a finished task's event), so no task waits for
a job that never comes."""

import flask
from pydantic import BaseModel

from shared.http import FunctionRoutes
from shared.logs import configure_logging
from shared.messaging import Outbox
from shared.settings import get_settings
from shared.storage import aws_client

configure_logging("sweeper")
settings = get_settings()
outbox = Outbox(aws_client("sqs", settings), aws_client("events", settings), settings.event_bus,
                sfn=aws_client("stepfunctions", settings))
routes = FunctionRoutes()


class SweepReport(BaseModel):
    relayed: int  # messages sent that had been left unsent


@routes.schedule
def sweep() -> SweepReport:
    return SweepReport(relayed=outbox.relay(older_than_seconds=settings.outbox_grace_seconds))


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)
