"""POST/GET /api/v1/webhooks, DELETE /api/v1/webhooks/{webhook_id}, the delivery log, redelivery,
ping, secret rotation and the redelivery of what failed: the key owner's own hooks only."""

import flask

from shared.platform.access import caller
from shared.platform.http import FunctionRoutes, json_body, json_response, parse_query
from shared.platform.logs import configure_logging
from shared.webhooks.models import DeliveryListQuery
from shared.webhooks.service import WebhookService

configure_logging("webhooks")
routes = FunctionRoutes()
webhooks = WebhookService()


@routes.post("/api/v1/webhooks")
def create_webhook(request: flask.Request) -> flask.Response:
    owner = caller(request.headers)
    return json_response(webhooks.register(owner, json_body(request)), status=201)


@routes.get("/api/v1/webhooks")
def list_webhooks(request: flask.Request) -> flask.Response:
    return json_response(webhooks.list(caller(request.headers)))


@routes.delete("/api/v1/webhooks/<webhook_id>")
def delete_webhook(request: flask.Request, webhook_id: str) -> flask.Response:
    webhooks.delete(caller(request.headers), webhook_id)
    return flask.Response(status=204)


@routes.get("/api/v1/webhooks/<webhook_id>/deliveries")
def list_deliveries(request: flask.Request, webhook_id: str) -> flask.Response:
    owner = caller(request.headers)
    return json_response(webhooks.deliveries(owner, webhook_id, parse_query(DeliveryListQuery, request)))


@routes.post("/api/v1/webhooks/<webhook_id>/deliveries/<delivery_id>/redeliver")
def redeliver(request: flask.Request, webhook_id: str, delivery_id: str) -> flask.Response:
    return json_response(webhooks.redeliver(caller(request.headers), webhook_id, delivery_id))


@routes.post("/api/v1/webhooks/<webhook_id>/ping")
def ping(request: flask.Request, webhook_id: str) -> flask.Response:
    return json_response(webhooks.ping(caller(request.headers), webhook_id))


@routes.post("/api/v1/webhooks/<webhook_id>/rotate-secret")
def rotate_secret(request: flask.Request, webhook_id: str) -> flask.Response:
    owner = caller(request.headers)
    body = json_body(request) if request.get_data(cache=True) else {}  # no body: a secret made by the server
    return json_response(webhooks.rotate_secret(owner, webhook_id, body))


@routes.post("/api/v1/webhooks/<webhook_id>/redeliver-failed")
def redeliver_failed(request: flask.Request, webhook_id: str) -> flask.Response:
    owner = caller(request.headers)
    return json_response(webhooks.redeliver_failed(owner, webhook_id, json_body(request)), status=202)


def handle(request: flask.Request) -> flask.Response:
    return routes.dispatch(request)
