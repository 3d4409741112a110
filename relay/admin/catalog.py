"""Admin routes of docs/contract.md §10: the event catalog and a test event.

``GET /v1/event-types`` lists every type with the JSON Schema of its body
(:mod:`relay.core.event_catalog`); ``POST /v1/subscriptions/{id}/test`` queues a
signed ``relay.test`` delivery for that subscription and answers it (202).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from relay.admin import app as admin
from relay.admin.common import ApiError, actor_of, object_response
from relay.admin.routing import Route
from relay.core.event_catalog import catalog
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.models import Delivery
from relay.webhooks.test_event import send_test_event


class EventTypeEntry(BaseModel):
    """One event type: its name, what it means, and the JSON Schema of its webhook body."""

    type: str
    description: str
    schema_: dict[str, Any] = Field(alias="schema")


class EventTypeList(BaseModel):
    """``GET /v1/event-types``: every type (one page, so ``nextCursor`` is always null)."""

    data: list[EventTypeEntry]
    nextCursor: str | None


def event_type_list() -> list[dict[str, Any]]:
    """The catalog as the API and the console show it."""
    return [info.wire() for info in catalog()]


async def list_event_types(request: web.Request) -> web.Response:
    return web.json_response({"data": event_type_list(), "nextCursor": None})


async def queue_test(request: web.Request, sid: str) -> Delivery:
    """Queue a ``relay.test`` for ``sid``: the delivery, or 404 / 409 (disabled)."""
    outcome = await send_test_event(request.app[admin.REDIS], sid, actor=actor_of(request))
    if outcome == "missing":
        raise ApiError(404, "not_found", f"no subscription {sid}")
    if outcome == "disabled":
        raise ApiError(
            409, "subscription_disabled", "the subscription is disabled; enable it first"
        )
    delivery = await DeliveryStore(request.app[admin.REDIS]).get(outcome)
    assert delivery is not None  # just created in the same Redis
    return delivery


async def send_test(request: web.Request) -> web.Response:
    return object_response(await queue_test(request, request.match_info["id"]), status=202)


ROUTES = (
    Route(
        "GET",
        "/event-types",
        list_event_types,
        "Every event type with the JSON Schema of its webhook body",
        200,
        response=EventTypeList,
    ),
    Route(
        "POST",
        "/subscriptions/{id}/test",
        send_test,
        "Deliver a signed relay.test event to this subscription",
        202,
        response=Delivery,
        errors=(404, 409),
    ),
)
