"""Webhook deliveries: task-finished events from the task-events queue (POST /events, SQS
batches), and every minute the retries that are due (POST /events, Schedule)."""

import flask

from shared.platform.http import FunctionRoutes
from shared.platform.logs import configure_logging
from shared.webhooks.notifier import Notifier

configure_logging("notifier")
notifier = Notifier()
routes = FunctionRoutes()
routes.events(notifier.handle_record)
routes.schedule(notifier.run_due_retries)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)
