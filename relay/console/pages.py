"""The console's pages (GET): overview, subscriptions, deliveries, operations, dead letters,
audit, event types. Each reads through the admin API's own stores and filters."""

from __future__ import annotations

from aiohttp import web

from relay.admin.catalog import event_type_list
from relay.admin.common import (
    ApiError,
    parse_cursor,
    parse_limit,
    parse_subscription_filter,
    query_enum,
)
from relay.admin.operations import OperationView, query_filters
from relay.admin.timeline import timeline
from relay.console.overview import overview
from relay.console.web import redis_of, render
from relay.core.audit import AuditAction
from relay.core.records import RequestState
from relay.store import dead_letters
from relay.store.audit import CURSOR_RE, AuditFilter, AuditStore
from relay.store.requests import RequestStore
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.models import EVENT_TYPES, DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionStore

PAGE = 25


def _limit(request: web.Request) -> int:
    return parse_limit(request) if "limit" in request.query else PAGE


async def overview_page(request: web.Request) -> web.Response:
    refresh = 10 if request.query.get("refresh") == "10" else None  # the one live refresh
    return render(
        request, "overview.html", {"o": await overview(redis_of(request)), "refresh": refresh}
    )


async def subscriptions_page(request: web.Request) -> web.Response:
    items, cursor = await SubscriptionStore(redis_of(request)).page(
        cursor=parse_cursor(request, "sub"), limit=_limit(request)
    )
    return render(
        request,
        "subscriptions.html",
        {"items": items, "next": cursor, "event_types": sorted(EVENT_TYPES)},
    )


async def subscription_page(request: web.Request) -> web.Response:
    sid = request.match_info["id"]
    sub = await SubscriptionStore(redis_of(request)).get(sid)
    if sub is None:
        raise ApiError(404, "not_found", f"no subscription {sid}")
    deliveries, cursor = await DeliveryStore(redis_of(request)).page(
        subscription_id=sid, status=None, cursor=parse_cursor(request, "dlv"), limit=PAGE
    )
    return render(
        request,
        "subscription.html",
        {"sub": sub, "deliveries": deliveries, "next": cursor, "event_types": sorted(EVENT_TYPES)},
    )


async def deliveries_page(request: web.Request) -> web.Response:
    subscription = parse_subscription_filter(request)
    status = query_enum(request, "status", DeliveryStatus)
    items, cursor = await DeliveryStore(redis_of(request)).page(
        subscription_id=subscription,
        status=status,
        cursor=parse_cursor(request, "dlv"),
        limit=_limit(request),
    )
    return render(
        request,
        "deliveries.html",
        {
            "items": items,
            "next": cursor,
            "subscription": subscription or "",
            "status": status.value if status else "",
            "statuses": [s.value for s in DeliveryStatus],
        },
    )


async def delivery_page(request: web.Request) -> web.Response:
    did = request.match_info["id"]
    delivery = await DeliveryStore(redis_of(request)).get(did)
    if delivery is None:
        raise ApiError(404, "not_found", f"no delivery {did}")
    return render(request, "delivery.html", {"d": delivery, "base": "/console"})


async def operations_page(request: web.Request) -> web.Response:
    state, portfolio = query_filters(request)
    records, cursor = await RequestStore(redis_of(request)).page(
        state=state,
        portfolio=portfolio,
        cursor=parse_cursor(request, "req"),
        limit=_limit(request),
    )
    return render(
        request,
        "operations.html",
        {
            "items": [OperationView.of(r) for r in records],
            "next": cursor,
            "state": state.value if state else "",
            "portfolio": portfolio or "",
            "states": [s.value for s in RequestState],
        },
    )


async def operation_page(request: web.Request) -> web.Response:
    request_id = request.match_info["request_id"]
    record = await RequestStore(redis_of(request)).get(request_id)
    if record is None:
        raise ApiError(404, "not_found", f"no request {request_id}")
    steps = await timeline(redis_of(request), record)
    return render(
        request, "operation.html", {"op": OperationView.of(record), "timeline": steps.entries}
    )


async def dead_letters_page(request: web.Request) -> web.Response:
    dead, cursor = await DeliveryStore(redis_of(request)).page(
        subscription_id=None,
        status=DeliveryStatus.DEAD,
        cursor=parse_cursor(request, "dlv"),
        limit=PAGE,
    )
    return render(
        request,
        "dead_letters.html",
        {
            "deliveries": dead,
            "next": cursor,
            "letters": (
                await dead_letters.page(redis_of(request), stream=None, cursor=None, limit=PAGE)
            )[0],
        },
    )


async def audit_log_page(request: web.Request) -> web.Response:
    action = request.query.get("action") or None
    cursor = request.query.get("cursor") or None
    if cursor is not None and not CURSOR_RE.fullmatch(cursor):
        raise ApiError(400, "bad_cursor", "cursor must be a stream id")
    if action is not None and action not in {a.value for a in AuditAction}:
        raise ApiError(400, "bad_action", "unknown audit action")
    entries, cursor = await AuditStore(redis_of(request)).page(
        AuditFilter(action=action), cursor=cursor, limit=_limit(request)
    )
    return render(
        request,
        "audit.html",
        {
            "items": entries,
            "next": cursor,
            "action": action or "",
            "actions": [a.value for a in AuditAction],
        },
    )


async def event_types_page(request: web.Request) -> web.Response:
    return render(request, "event_types.html", {"types": event_type_list(), "portal": False})
