"""Admin routes for webhook deliveries (docs/contract.md §6.6): list, show, replay, recover.

``GET /v1/deliveries?subscription=&status=&limit=&cursor=``, ``GET /v1/deliveries/{id}``,
``POST /v1/deliveries/{id}/replay`` and ``POST /v1/deliveries/recover``
``{"since": ISO 8601, "subscription"?}`` (every dead delivery since then, again).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from relay.admin import app as admin
from relay.admin.common import (
    ApiError,
    actor_of,
    json_body,
    list_response,
    object_response,
    parse_cursor,
    parse_limit,
    parse_subscription_filter,
    query_enum,
)
from relay.admin.routing import Route
from relay.admin.schemas import ListQuery, Page
from relay.core.clock import utc_now
from relay.webhooks.deliveries import REPLAY_REFUSALS, DeliveryStore, SubscriptionDisabled
from relay.webhooks.models import Delivery, DeliveryStatus


class Recover(BaseModel):
    """Body of ``POST /v1/deliveries/recover``."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime
    subscription: str | None = Field(default=None, min_length=1, max_length=64)


class Recovered(BaseModel):
    """Answer of ``POST /v1/deliveries/recover``: how many deliveries were queued again."""

    recovered: int


class DeliveryQuery(ListQuery):
    """Query string of ``GET /v1/deliveries``."""

    subscription: str | None = Field(
        default=None,
        description="only this subscription's: its id (sub_...), or an on-call target's",
    )
    status: DeliveryStatus | None = None


class DeliveryPage(Page[Delivery]):
    pass


def _store(request: web.Request) -> DeliveryStore:
    return DeliveryStore(request.app[admin.REDIS])


async def list_all(request: web.Request) -> web.Response:
    limit = parse_limit(request)
    items, cursor = await _store(request).page(
        subscription_id=parse_subscription_filter(request),
        status=query_enum(request, "status", DeliveryStatus),
        cursor=parse_cursor(request, "dlv"),
        limit=limit,
    )
    return list_response(items, cursor)


async def get_one(request: web.Request) -> web.Response:
    did = request.match_info["id"]
    delivery = await _store(request).get(did)
    if delivery is None:
        raise ApiError(404, "not_found", f"no delivery {did}")
    return object_response(delivery)


async def replay_delivery(request: web.Request, did: str) -> Delivery:
    """Queue a final delivery again (the admin API's and the console's one path)."""
    store = _store(request)
    outcome = await store.replay(did, actor=actor_of(request))
    if outcome == "missing":
        raise ApiError(404, "not_found", f"no delivery {did}")
    if outcome != "queued":
        raise ApiError(409, outcome, REPLAY_REFUSALS.get(outcome, outcome))
    delivery = await store.get(did)
    assert delivery is not None
    return delivery


async def recover_deliveries(request: web.Request, body: Recover) -> int:
    """Queue every dead or skipped delivery since ``body.since`` again; how many were."""
    if body.since > utc_now():
        raise ApiError(
            422,
            "invalid",
            "since is in the future",
            [{"field": "since", "message": "must not be in the future"}],
        )
    try:
        return await _store(request).recover_since(
            body.since, subscription_id=body.subscription, actor=actor_of(request)
        )
    except SubscriptionDisabled as exc:
        raise ApiError(409, "subscription_disabled", str(exc)) from exc


async def replay(request: web.Request) -> web.Response:
    delivery = await replay_delivery(request, request.match_info["id"])
    return object_response(delivery, status=202)


async def recover(request: web.Request) -> web.Response:
    body: Recover = await json_body(request, Recover)
    return web.json_response({"recovered": await recover_deliveries(request, body)}, status=202)


ROUTES = (
    Route(
        "GET",
        "/deliveries",
        list_all,
        "List deliveries with their attempts, newest first",
        200,
        response=DeliveryPage,
        query=DeliveryQuery,
        errors=(400,),
    ),
    Route(
        "POST",
        "/deliveries/recover",
        recover,
        "Queue every dead or skipped delivery since a time again",
        202,
        response=Recovered,
        body=Recover,
        errors=(400, 409, 413, 422),
    ),
    Route("GET", "/deliveries/{id}", get_one, "Show a delivery", 200, Delivery, errors=(404,)),
    Route(
        "POST",
        "/deliveries/{id}/replay",
        replay,
        "Queue a succeeded, dead or skipped delivery again",
        202,
        response=Delivery,
        errors=(404, 409),
    ),
)
