"""Admin routes for webhook subscriptions (docs/contract.md §6.5).

``POST /v1/subscriptions``, ``GET /v1/subscriptions``, ``GET/PATCH/DELETE
/v1/subscriptions/{id}`` and ``POST /v1/subscriptions/{id}/rotate-secret``.
URLs are checked for SSRF on every save (scheme, host, and every address the
host resolves to); a refused URL is a 422 on the ``url`` field.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractResolver

from relay.admin import app as admin
from relay.admin.common import (
    ApiError,
    actor_of,
    json_body,
    list_response,
    parse_cursor,
    parse_limit,
)
from relay.admin.routing import Route
from relay.admin.schemas import ListQuery, Page
from relay.webhooks.models import Subscription
from relay.webhooks.ssrf import GuardedResolver, UnsafeURL, check_destination
from relay.webhooks.subscriptions import (
    SubscriptionCreate,
    SubscriptionPatch,
    SubscriptionStore,
    TooManySecrets,
)

# Tests put a table-driven resolver here (on this app or the one it is mounted in);
# production resolves with the system's.
RESOLVER = web.AppKey("webhook_resolver", AbstractResolver)


class SubscriptionWithSecret(Subscription):
    """A subscription as created or rotated: the one time its secret is shown."""

    secret: str


class SubscriptionPage(Page[Subscription]):
    pass


def _store(request: web.Request) -> SubscriptionStore:
    return SubscriptionStore(request.app[admin.REDIS])


async def _check_url(request: web.Request, url: str) -> None:
    allow_private = request.app[admin.SETTINGS].relay_allow_private_urls
    inner = request.config_dict.get(RESOLVER)
    try:
        await check_destination(
            url, GuardedResolver(inner, allow_private=allow_private), allow_private=allow_private
        )
    except UnsafeURL as exc:
        raise ApiError(
            422,
            "invalid",
            "request failed validation",
            [{"field": "url", "message": f"url {exc}"}],
        ) from None


def _found(subscription: Subscription | None, sid: str) -> Subscription:
    if subscription is None:
        raise ApiError(404, "not_found", f"no subscription {sid}")
    return subscription


# The actions below are what both the JSON handlers and the console's forms call
# (relay/console): one code path per change, whichever door it came through.


async def create_subscription(request: web.Request, body: SubscriptionCreate) -> Subscription:
    """Check the URL (SSRF) and create; the answer carries the secret."""
    await _check_url(request, body.url)
    return await _store(request).create(body, actor=actor_of(request))


async def update_subscription(
    request: web.Request, sid: str, body: SubscriptionPatch
) -> Subscription:
    """Apply ``body`` to ``sid`` (404 if unknown; a new URL is checked first)."""
    store = _store(request)
    _found(await store.get(sid), sid)
    if body.url is not None:
        await _check_url(request, body.url)
    return _found(await store.update(sid, body, actor=actor_of(request)), sid)


async def delete_subscription(request: web.Request, sid: str) -> None:
    if not await _store(request).delete(sid, actor=actor_of(request)):
        raise ApiError(404, "not_found", f"no subscription {sid}")


async def rotate_subscription_secret(request: web.Request, sid: str) -> Subscription:
    """A new secret (shown once, in the answer); 409 while too many earlier ones still sign."""
    try:
        return _found(await _store(request).rotate_secret(sid, actor=actor_of(request)), sid)
    except TooManySecrets as exc:
        raise ApiError(409, "too_many_secrets", str(exc)) from None


async def create(request: web.Request) -> web.Response:
    body: SubscriptionCreate = await json_body(request, SubscriptionCreate)
    subscription = await create_subscription(request, body)
    return web.json_response(subscription.public(), status=201)


async def list_all(request: web.Request) -> web.Response:
    limit = parse_limit(request)
    cursor = parse_cursor(request, "sub")
    items, cursor = await _store(request).page(cursor=cursor, limit=limit)
    return list_response([s.public() for s in items], cursor)


async def get_one(request: web.Request) -> web.Response:
    sid = request.match_info["id"]
    return web.json_response(_found(await _store(request).get(sid), sid).public())


async def patch(request: web.Request) -> web.Response:
    body: SubscriptionPatch = await json_body(request, SubscriptionPatch)
    updated = await update_subscription(request, request.match_info["id"], body)
    return web.json_response(updated.public())


async def delete(request: web.Request) -> web.Response:
    await delete_subscription(request, request.match_info["id"])
    return web.Response(status=204)


async def rotate_secret(request: web.Request) -> web.Response:
    rotated = await rotate_subscription_secret(request, request.match_info["id"])
    return web.json_response(rotated.public())


ROUTES = (
    Route(
        "POST",
        "/subscriptions",
        create,
        "Create a subscription; the answer carries its signing secret",
        201,
        response=SubscriptionWithSecret,
        body=SubscriptionCreate,
        errors=(400, 413, 422),
    ),
    Route(
        "GET",
        "/subscriptions",
        list_all,
        "List subscriptions, newest first",
        200,
        response=SubscriptionPage,
        query=ListQuery,
        errors=(400,),
    ),
    Route(
        "GET",
        "/subscriptions/{id}",
        get_one,
        "Show a subscription",
        200,
        Subscription,
        errors=(404,),
    ),
    Route(
        "PATCH",
        "/subscriptions/{id}",
        patch,
        "Change url, events, enabled (or description, maxInFlight)",
        200,
        response=Subscription,
        body=SubscriptionPatch,
        errors=(400, 404, 413, 422),
    ),
    Route("DELETE", "/subscriptions/{id}", delete, "Delete a subscription", 204, errors=(404,)),
    Route(
        "POST",
        "/subscriptions/{id}/rotate-secret",
        rotate_secret,
        "A new signing secret; every earlier one still signs for 24 h after its replacement",
        200,
        response=SubscriptionWithSecret,
        errors=(404, 409),
    ),
)
