"""The console's pages (GET): overview, subscriptions, deliveries, operations, dead letters,
audit, event types. Each reads through the admin API's own stores and filters."""

from __future__ import annotations

import re

from aiohttp import web

from relay.admin.catalog import event_type_list
from relay.admin.common import ApiError, parse_limit, query_enum
from relay.admin.operations import OperationView, page_records, query_filters
from relay.console.overview import overview
from relay.console.web import redis_of, render
from relay.core.audit import AuditAction
from relay.core.records import RequestState
from relay.store import keys
from relay.store.audit_reader import audit_page
from relay.store.connection import text, text_map
from relay.store.queue import load_record
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.models import EVENT_TYPES, DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionStore

PAGE = 25
STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
DEAD_LETTERS_SHOWN = 50


def _cursor(request: web.Request) -> str | None:
    return request.query.get("cursor") or None


def _limit(request: web.Request) -> int:
    return parse_limit(request) if "limit" in request.query else PAGE


async def overview_page(request: web.Request) -> web.Response:
    refresh = 10 if request.query.get("refresh") == "10" else None  # the one live refresh
    return render(
        request, "overview.html", {"o": await overview(redis_of(request)), "refresh": refresh}
    )


async def subscriptions_page(request: web.Request) -> web.Response:
    items, cursor = await SubscriptionStore(redis_of(request)).page(
        cursor=_cursor(request), limit=_limit(request)
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
        subscription_id=sid, status=None, cursor=_cursor(request), limit=PAGE
    )
    return render(
        request,
        "subscription.html",
        {"sub": sub, "deliveries": deliveries, "next": cursor, "event_types": sorted(EVENT_TYPES)},
    )


async def deliveries_page(request: web.Request) -> web.Response:
    subscription = request.query.get("subscription") or None
    status = query_enum(request, "status", DeliveryStatus)
    items, cursor = await DeliveryStore(redis_of(request)).page(
        subscription_id=subscription, status=status, cursor=_cursor(request), limit=_limit(request)
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
    records, cursor = await page_records(
        redis_of(request),
        state=state,
        portfolio=portfolio,
        cursor=_cursor(request),
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
    record = await load_record(redis_of(request), request_id)
    if record is None:
        raise ApiError(404, "not_found", f"no request {request_id}")
    view = OperationView.of(record)
    timeline = [
        (at, what)
        for at, what in (
            (view.acceptedAt, "accepted from Slack"),
            (view.submittedAt, f"submitted to Glider as {view.operationId}"),
            (view.finishedAt, f"finished: {view.state.value}"),
            (view.retryAt, "retry allowed"),
        )
        if at is not None
    ]
    timeline.sort(key=lambda pair: pair[0])
    return render(request, "operation.html", {"op": view, "timeline": timeline})


async def _dead_stream(request: web.Request, stream: str) -> list[dict[str, str]]:
    entries = await redis_of(request).xrevrange(stream, count=DEAD_LETTERS_SHOWN) or []
    return [{"id": text(entry_id or ""), **text_map(fields or {})} for entry_id, fields in entries]


async def dead_letters_page(request: web.Request) -> web.Response:
    dead, cursor = await DeliveryStore(redis_of(request)).page(
        subscription_id=None, status=DeliveryStatus.DEAD, cursor=_cursor(request), limit=PAGE
    )
    return render(
        request,
        "dead_letters.html",
        {
            "deliveries": dead,
            "next": cursor,
            "commands": await _dead_stream(request, keys.COMMANDS_DEAD),
            "replies": await _dead_stream(request, keys.REPLIES_DEAD),
        },
    )


async def audit_log_page(request: web.Request) -> web.Response:
    action = request.query.get("action") or None
    cursor = _cursor(request)
    if cursor is not None and not STREAM_ID.fullmatch(cursor):
        raise ApiError(400, "bad_cursor", "cursor must be a stream id")
    if action is not None and action not in {a.value for a in AuditAction}:
        raise ApiError(400, "bad_action", "unknown audit action")
    entries, cursor = await audit_page(
        redis_of(request), action=action, cursor=cursor, limit=_limit(request)
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
