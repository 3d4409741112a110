"""The partner portal (docs/contract.md §10): one subscription, reached by a signed link.

``GET /portal/<token>`` checks the link (signature, expiry, the subscription's
current revocation generation, the subscription still there), opens a portal
session bound to that one subscription and redirects to ``/portal``, so the token
does not stay in the address bar. Every later request checks the same again.
Each page and action takes the subscription from the session, never from the
URL, and a delivery of any other subscription is a 404.
"""

from __future__ import annotations

import time

from aiohttp import web

from relay.admin import app as admin
from relay.admin import catalog
from relay.admin import deliveries as delivery_api
from relay.admin import subscriptions as subscription_api
from relay.admin.catalog import event_type_list
from relay.admin.common import ApiError, parse_cursor, query_enum
from relay.console.web import redis_of, render, see_other, session_of, set_cookie
from relay.core.portal_links import portal_key, verify
from relay.store import portal
from relay.store.sessions import Session, SessionStore
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.models import Delivery, DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionStore

COOKIE = "gr_portal"
PATH = "/portal"
PAGE = 25


def _key(request: web.Request) -> bytes | None:
    token = request.app[admin.SETTINGS].relay_admin_token
    return portal_key(token.get_secret_value()) if token else None


async def still_valid(request: web.Request, session: Session) -> bool:
    """The link behind ``session`` has not expired, been revoked, or lost its subscription."""
    sid = session.subscription_id
    if sid is None or session.expires_at <= time.time():
        return False
    redis = redis_of(request)
    if await portal.generation(redis, sid) != session.generation:
        return False
    return await SubscriptionStore(redis).get(sid) is not None


def refused(request: web.Request) -> web.Response:
    return render(
        request,
        "error.html",
        {
            "status": 403,
            "message": "This portal link has expired or was revoked. Ask for a new one.",
            "details": [],
        },
        status=403,
    )


async def open_link(request: web.Request) -> web.StreamResponse:
    key, token = _key(request), request.match_info["token"]
    claim = verify(key, token, now_s=int(time.time())) if key else None
    redis = redis_of(request)
    if (
        claim is None
        or await portal.generation(redis, claim.subscription_id) != claim.generation
        or await SubscriptionStore(redis).get(claim.subscription_id) is None
    ):
        return refused(request)
    ttl = claim.expires_at - int(time.time())
    session = await SessionStore(redis).open(
        "portal", ttl_s=ttl, subscription_id=claim.subscription_id, generation=claim.generation
    )
    response = see_other(PATH)
    set_cookie(response, request, COOKIE, session.id, path=PATH, max_age=ttl)
    return response


def _sid(request: web.Request) -> str:
    sid = session_of(request).subscription_id
    assert sid is not None  # still_valid let only bound sessions in
    return sid


async def _own_delivery(request: web.Request) -> Delivery:
    did = request.match_info["id"]
    delivery = await DeliveryStore(redis_of(request)).get(did)
    if delivery is None or delivery.subscriptionId != _sid(request):
        raise ApiError(404, "not_found", f"no delivery {did}")
    return delivery


async def home(request: web.Request) -> web.Response:
    sid = _sid(request)
    sub = await SubscriptionStore(redis_of(request)).get(sid)
    status = query_enum(request, "status", DeliveryStatus)  # an unknown one: a 400 page
    items, cursor = await DeliveryStore(redis_of(request)).page(
        subscription_id=sid, status=status, cursor=parse_cursor(request, "dlv"), limit=PAGE
    )
    return render(
        request,
        "portal_home.html",
        {
            "sub": sub,
            "deliveries": items,
            "next": cursor,
            "status": status.value if status else "",
            "statuses": [s.value for s in DeliveryStatus],
        },
    )


async def delivery_page(request: web.Request) -> web.Response:
    return render(request, "delivery.html", {"d": await _own_delivery(request), "base": PATH})


async def replay(request: web.Request) -> web.StreamResponse:
    delivery = await _own_delivery(request)
    await delivery_api.replay_delivery(request, delivery.id)
    return see_other(f"{PATH}/deliveries/{delivery.id}")


async def rotate_secret(request: web.Request) -> web.Response:
    sid = _sid(request)
    rotated = await subscription_api.rotate_subscription_secret(request, sid)
    return render(
        request,
        "secret.html",
        {"sub_id": sid, "secret": rotated.secret, "what": "rotated", "base": PATH},
    )


async def send_test(request: web.Request) -> web.StreamResponse:
    delivery = await catalog.queue_test(request, _sid(request))
    return see_other(f"{PATH}/deliveries/{delivery.id}")


async def event_types(request: web.Request) -> web.Response:
    return render(request, "event_types.html", {"types": event_type_list(), "portal": True})
