"""POST /api/v1/match/chain queues a chain-matching task (201) and starts its Step Functions
execution; the chain queue's events (the execution's last state) finalize it, and a schedule
finalizes chains whose execution ended without doing so."""

import flask

from shared.matching.chain import INPUT_FIELDS, ChainService, RecoveryReport
from shared.matching.defaults import ToolDefaults
from shared.matching.settings import get_matching_settings
from shared.platform.access import caller
from shared.platform.http import FunctionRoutes, json_response, submission
from shared.platform.logs import configure_logging
from shared.platform.messaging import Outbox
from shared.platform.storage import aws_client, get_object_store
from shared.platform.tasks import TaskRepository

configure_logging("match_chain")
settings = get_matching_settings()
sfn = aws_client("stepfunctions", settings)
outbox = Outbox.of_stack(settings, sfn=sfn)
service = ChainService(get_object_store(), TaskRepository(outbox=outbox), ToolDefaults(), sfn, settings)
routes = FunctionRoutes()
routes.events(service.handle_finished)


@routes.post("/api/v1/match/chain")
def submit(request: flask.Request) -> flask.Response:
    owner = caller(request.headers)
    sent = submission(request, owner, dict.fromkeys(INPUT_FIELDS, "image"), settings.max_upload_bytes)
    task = service.submit(owner, sent.form, sent.files)
    sent.done()
    return json_response(task, status=201)


@routes.schedule
def recover() -> RecoveryReport:
    return service.recover()


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)
