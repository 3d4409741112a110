"""Admin routes for partner-portal links (docs/contract.md §10).

``POST /v1/subscriptions/{id}/portal-link`` ``{"ttl"?: "24h"}`` answers
``{"url": ".../portal/<token>", "expiresAt"}``; ``POST .../portal-link/revoke``
ends every link (and portal session) issued for that subscription so far.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_serializer

from relay.admin import app as admin
from relay.admin.common import ApiError, actor_of, json_body
from relay.admin.routing import Route
from relay.core.audit import AuditAction, new_entry
from relay.core.clock import iso_ms
from relay.core.portal_links import TTL_PATTERN, PortalClaim, parse_ttl, portal_key, sign
from relay.store import portal
from relay.store.audit import AuditStore
from relay.webhooks.subscriptions import SubscriptionStore


class PortalLinkRequest(BaseModel):
    """Body of ``POST /v1/subscriptions/{id}/portal-link`` (optional: an empty body is 24 h)."""

    model_config = ConfigDict(extra="forbid")

    ttl: str | None = Field(
        default=None, pattern=TTL_PATTERN, description="lifetime, 1m to 30d; default 24h"
    )


class PortalLink(BaseModel):
    """A signed link to the partner portal of one subscription."""

    url: str
    expiresAt: datetime

    @field_serializer("expiresAt")
    def _iso(self, value: datetime) -> str:
        return iso_ms(value)


def external_base(request: web.Request) -> str:
    """This server as its visitor reached it (``X-Forwarded-Proto`` honoured behind a proxy)."""
    scheme = "https" if request.headers.get("X-Forwarded-Proto") == "https" else request.scheme
    return f"{scheme}://{request.host}"


async def _body(request: web.Request) -> PortalLinkRequest:
    if not await request.read():
        return PortalLinkRequest()
    body: PortalLinkRequest = await json_body(request, PortalLinkRequest)
    return body


async def _audit(request: web.Request, action: AuditAction, sid: str, detail: str) -> None:
    entry = new_entry(action, actor_of(request), subscription_id=sid, detail=detail)
    await AuditStore(request.app[admin.REDIS]).append(entry)


async def issue_link(request: web.Request, sid: str, ttl: str | None) -> PortalLink:
    """A link for ``sid`` (404 if there is no such subscription)."""
    redis = request.app[admin.REDIS]
    if await SubscriptionStore(redis).get(sid) is None:
        raise ApiError(404, "not_found", f"no subscription {sid}")
    try:
        ttl_s = parse_ttl(ttl)
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc), [{"field": "ttl", "message": str(exc)}]) from None
    token = request.app[admin.SETTINGS].relay_admin_token
    assert token is not None  # the admin middleware answered 503 otherwise
    expires = int(time.time()) + ttl_s
    claim = PortalClaim(sid, await portal.generation(redis, sid), expires)
    link = sign(portal_key(token.get_secret_value()), claim)
    # The link is a credential: the entry says only that one was issued, and until when.
    await _audit(request, AuditAction.PORTAL_LINK_ISSUED, sid, f"valid {ttl_s} s")
    return PortalLink(
        url=f"{external_base(request)}/portal/{link}",
        expiresAt=datetime.fromtimestamp(expires, UTC),
    )


async def create_link(request: web.Request) -> web.Response:
    body = await _body(request)
    link = await issue_link(request, request.match_info["id"], body.ttl)
    return web.json_response(link.model_dump(mode="json"), status=201)


async def revoke_links(request: web.Request) -> web.Response:
    sid = request.match_info["id"]
    redis = request.app[admin.REDIS]
    if await SubscriptionStore(redis).get(sid) is None:
        raise ApiError(404, "not_found", f"no subscription {sid}")
    await portal.revoke(redis, sid)
    await _audit(request, AuditAction.PORTAL_LINKS_REVOKED, sid, "every earlier link")
    return web.Response(status=204)


ROUTES = (
    Route(
        "POST",
        "/subscriptions/{id}/portal-link",
        create_link,
        "A signed, expiring link to this subscription's partner portal",
        201,
        response=PortalLink,
        body=PortalLinkRequest,
        errors=(400, 404, 413, 422),
    ),
    Route(
        "POST",
        "/subscriptions/{id}/portal-link/revoke",
        revoke_links,
        "Revoke every portal link issued for this subscription so far",
        204,
        errors=(404,),
    ),
)
