"""The console's actions (POST forms). Each calls the admin API's own function for it
(:mod:`relay.admin.subscriptions`, :mod:`relay.admin.deliveries`, :mod:`relay.admin.catalog`,
:mod:`relay.admin.portal_links`), so a change is the same whichever door it came through."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from relay.admin import catalog, portal_links
from relay.admin import dead_letters as dead_letter_api
from relay.admin import deliveries as delivery_api
from relay.admin import subscriptions as subscription_api
from relay.admin.common import ApiError
from relay.console.web import render, see_other
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionPatch

Form = MultiDictProxy[str | bytes | bytearray | FileField]


async def _form(request: web.Request) -> Form:
    form: Form = await request.post()
    return form


def _text(form: Form, name: str) -> str | None:
    value = form.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _events(form: Form) -> list[str]:
    return [v for v in form.getall("events", []) if isinstance(v, str)]


def _secret_page(request: web.Request, sub_id: str, secret: str | None, what: str) -> web.Response:
    return render(request, "secret.html", {"sub_id": sub_id, "secret": secret, "what": what})


async def create(request: web.Request) -> web.Response:
    form = await _form(request)
    body = SubscriptionCreate(
        url=_text(form, "url") or "", events=_events(form), description=_text(form, "description")
    )
    created = await subscription_api.create_subscription(request, body)
    return _secret_page(request, created.id, created.secret, "created")


async def edit(request: web.Request) -> web.StreamResponse:
    sid = request.match_info["id"]
    form = await _form(request)
    patch = SubscriptionPatch(
        url=_text(form, "url"), events=_events(form) or None, description=_text(form, "description")
    )
    await subscription_api.update_subscription(request, sid, patch)
    return see_other(f"/console/subscriptions/{sid}")


async def enable(request: web.Request) -> web.StreamResponse:
    sid = request.match_info["id"]
    await subscription_api.update_subscription(request, sid, SubscriptionPatch(enabled=True))
    return see_other(f"/console/subscriptions/{sid}")


async def disable(request: web.Request) -> web.StreamResponse:
    sid = request.match_info["id"]
    await subscription_api.update_subscription(request, sid, SubscriptionPatch(enabled=False))
    return see_other(f"/console/subscriptions/{sid}")


async def rotate_secret(request: web.Request) -> web.Response:
    sid = request.match_info["id"]
    rotated = await subscription_api.rotate_subscription_secret(request, sid)
    return _secret_page(request, sid, rotated.secret, "rotated")


async def delete(request: web.Request) -> web.StreamResponse:
    await subscription_api.delete_subscription(request, request.match_info["id"])
    return see_other("/console/subscriptions")


async def send_test(request: web.Request) -> web.StreamResponse:
    delivery = await catalog.queue_test(request, request.match_info["id"])
    return see_other(f"/console/deliveries/{delivery.id}")


async def portal_link(request: web.Request) -> web.Response:
    sid = request.match_info["id"]
    link = await portal_links.issue_link(request, sid, _text(await _form(request), "ttl"))
    return render(request, "portal_link.html", {"sub_id": sid, "link": link})


async def replay(request: web.Request) -> web.StreamResponse:
    delivery = await delivery_api.replay_delivery(request, request.match_info["id"])
    return see_other(f"/console/deliveries/{delivery.id}")


async def recover(request: web.Request) -> web.Response:
    form = await _form(request)
    since_text = _text(form, "since")
    try:
        since = datetime.fromisoformat(since_text or "")
    except ValueError:
        raise ApiError(
            422, "invalid", "since must be a time such as 2026-11-22T12:00:00Z"
        ) from None
    if since.tzinfo is None:  # what a datetime-local field sends: read as UTC, as shown
        since = since.replace(tzinfo=UTC)
    body = delivery_api.Recover(since=since, subscription=_text(form, "subscription"))
    count = await delivery_api.recover_deliveries(request, body)
    return render(request, "recovered.html", {"count": count, "since": since})


async def replay_dead_letter(request: web.Request) -> web.StreamResponse:
    await dead_letter_api.replay_dead_letter(request, request.match_info["id"])
    return see_other("/console/dead-letters")
