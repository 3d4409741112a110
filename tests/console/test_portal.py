"""The partner portal (docs/contract.md §10): a signed link, one subscription, nothing else."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from relay.console.app import PUBLIC_CONSOLE, create_console_app
from relay.core.portal_links import PortalClaim, parse_ttl, portal_key, sign, verify
from relay.settings import Settings
from relay.store import keys
from relay.store.audit import AuditFilter, AuditStore
from relay.store.connection import text
from relay.store.queue import ensure_group
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.fanout import fan_out, plan
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.oncall import OnCallRules
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from relay.webhooks.test_event import send_test_event
from tests.console.support import TOKEN, Client, post_form
from tests.fixtures.dispatch import event, publish
from tests.fixtures.web import WebFactory, WebHarness

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Every console URL: read off the console app's own router, so a new page or action
# cannot be left out; ids are filled in per test (the other subscription's, mostly).
FILL = {
    "/console/subscriptions/{id}": "{other}",
    "/console/deliveries/{id}": "{dlv}",
    "/console/dead-letters/{id}": "commands-1700000000000-0",
    "/console/operations/{request_id}": "req_x",
}


def console_urls(redis: aioredis.Redis, settings: Settings) -> list[tuple[str, str]]:
    """(method, URL template) of every non-public console route."""
    app = create_console_app(redis, settings)
    urls = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.name in PUBLIC_CONSOLE:
            continue
        path = "/console" + route.resource.canonical if route.resource else "/console"
        for prefix, value in FILL.items():
            stem = prefix.rsplit("/", 1)[0]
            path = path.replace(prefix, f"{stem}/{value}")
        urls.append((route.method, path))
    return urls


async def _setup(
    web_factory: WebFactory, redis: aioredis.Redis
) -> tuple[WebHarness, dict[str, str]]:
    harness = await web_factory(redis, relay_admin_token=TOKEN)
    store = SubscriptionStore(redis)
    mine = await store.create(SubscriptionCreate(url="https://hooks.partner.test/m", events=["*"]))
    other = await store.create(SubscriptionCreate(url="https://hooks.partner.test/o", events=["*"]))
    other_delivery = await send_test_event(redis, other.id)
    return harness, {"sub": mine.id, "other": other.id, "dlv": other_delivery}


async def _link(client: Client, sid: str, **body: Any) -> dict[str, Any]:
    answer = await client.post(f"/v1/subscriptions/{sid}/portal-link", json=body, headers=AUTH)
    assert answer.status == 201, await answer.text()
    link: dict[str, Any] = await answer.json()
    return link


async def _open(client: Client, url: str) -> int:
    path = "/portal/" + url.rsplit("/portal/", 1)[1]
    return (await client.get(path, allow_redirects=False)).status


async def test_link_opens_one_subscription_and_nothing_else(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """A portal session sees its subscription; every console URL and other ids stay shut."""
    harness, ids = await _setup(web_factory, fake_redis)
    client = harness.client
    link = await _link(client, ids["sub"], ttl="1h")
    assert link["url"].startswith(str(client.make_url("/portal/")))
    assert await _open(client, link["url"]) == 303
    home = await (await client.get("/portal")).text()
    assert ids["sub"] in home
    assert ids["other"] not in home
    assert "Send test event" in home
    assert "Rotate secret" in home
    assert (await client.get(f"/portal/deliveries/{ids['dlv']}")).status == 404
    refused = await post_form(client, "/portal", f"/portal/deliveries/{ids['dlv']}/replay")
    assert refused.status == 404
    csrf_page = await (await client.get("/portal")).text()
    urls = console_urls(fake_redis, harness.settings)
    assert len(urls) >= 24  # 11 pages and 13 actions today, the dead-letter replay too
    assert ("POST", "/console/dead-letters/commands-1700000000000-0/replay") in urls
    for method, template in [*urls, ("GET", "/console/subscriptions/{sub}")]:
        data = {"csrf": csrf_page} if method == "POST" else None
        answer = await client.request(
            method, template.format(**ids), data=data, allow_redirects=False
        )
        assert answer.status == 303, (method, template)
        assert answer.headers["Location"] == "/console/sign-in", template
    for path in ("/v1/subscriptions", f"/v1/subscriptions/{ids['other']}", "/v1/deliveries"):
        assert (await client.get(path)).status == 401
    assert await SubscriptionStore(fake_redis).get(ids["other"]) is not None


async def test_portal_actions_work_on_its_own_subscription(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """Send test event, Rotate secret and the event catalog, from the portal."""
    harness, ids = await _setup(web_factory, fake_redis)
    client = harness.client
    await _open(client, (await _link(client, ids["sub"]))["url"])
    tested = await post_form(client, "/portal", "/portal/test")
    assert tested.status == 200
    assert tested.url.path.startswith("/portal/deliveries/dlv_")
    [mine] = (await DeliveryStore(fake_redis).page(subscription_id=ids["sub"], limit=5))[0]
    assert mine.eventType == "relay.test"
    rotated = await post_form(client, "/portal", "/portal/rotate-secret")
    assert "whsec_" in await rotated.text()
    catalog = await (await client.get("/portal/event-types")).text()
    assert "from standardwebhooks.webhooks import Webhook" in catalog
    entries, _ = await AuditStore(fake_redis).page(AuditFilter(action="subscription"), limit=2)
    # newest first: the partner's two actions, audited as the portal's
    assert [(e.action.value, e.actor.source) for e in entries] == [
        ("subscription.secret_rotated", "portal"),
        ("subscription.tested", "portal"),
    ]
    assert 'import { Webhook } from "standardwebhooks"' in catalog.replace("&#34;", '"')


@pytest.mark.parametrize("ending", ["revoke", "delete"])
async def test_link_and_session_die_on_revoke_or_delete(
    web_factory: WebFactory, fake_redis: aioredis.Redis, ending: str
) -> None:
    """After /portal-link/revoke or deleting the subscription, link and open session are 403."""
    harness, ids = await _setup(web_factory, fake_redis)
    client = harness.client
    link = await _link(client, ids["sub"])
    assert await _open(client, link["url"]) == 303
    if ending == "revoke":
        answer = await client.post(
            f"/v1/subscriptions/{ids['sub']}/portal-link/revoke", headers=AUTH
        )
        assert answer.status == 204
    else:
        assert (await client.delete(f"/v1/subscriptions/{ids['sub']}", headers=AUTH)).status == 204
    assert (await client.get("/portal")).status == 403
    assert await _open(client, link["url"]) == 403
    if ending == "revoke":
        assert await _open(client, (await _link(client, ids["sub"]))["url"]) == 303


async def test_expired_forged_and_foreign_tokens_are_refused(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """An expired link, a tampered one, one signed with another key: 403, no session."""
    harness, ids = await _setup(web_factory, fake_redis)
    key = portal_key(TOKEN)
    now = int(time.time())
    expired = sign(key, PortalClaim(ids["sub"], 0, now - 1))
    foreign = sign(portal_key("another-relay-token-0000"), PortalClaim(ids["sub"], 0, now + 99))
    good = sign(key, PortalClaim(ids["sub"], 0, now + 99))
    mac = good.split(".")[1]
    swapped = sign(key, PortalClaim(ids["other"], 0, now + 99)).split(".")[0] + "." + mac
    for token in (expired, foreign, swapped, "x", "a.b", good + "x"):
        answer = await harness.client.get(f"/portal/{token}", allow_redirects=False)
        assert answer.status == 403, token
        assert "Set-Cookie" not in answer.headers


def test_ttl_and_token_rules() -> None:
    """ttl is 1 min to 30 days; a token verifies only with its key and before it expires."""
    assert parse_ttl(None) == 24 * 3600
    assert parse_ttl("30m") == 1800
    for bad in ("0h", "31d", "10", "1w", "59s", " 1h"):
        with pytest.raises(ValueError, match="ttl"):
            parse_ttl(bad)
    claim = PortalClaim("sub_1", 3, 2000)
    token = sign(b"k", claim)
    assert verify(b"k", token, now_s=1999) == claim
    assert verify(b"k", token, now_s=2000) is None
    assert verify(b"other", token, now_s=1) is None


async def _fan_out(redis: aioredis.Redis) -> None:
    """One event through the real fan-out step (plan on the routing table, then Lua)."""
    await ensure_group(redis, keys.EVENTS, keys.EVENTS_GROUP)
    sent = event()
    await publish(redis, sent)
    reply: Any = await redis.xreadgroup(keys.EVENTS_GROUP, "t", {keys.EVENTS: ">"}, count=1)
    table = await SubscriptionStore(redis).routing_table()
    created = await fan_out(
        redis,
        group=keys.EVENTS_GROUP,
        version=table.version,
        batch=[(text(reply[0][1][0][0]), plan(sent, table, OnCallRules()))],
        now_ms=int(time.time() * 1000),
    )
    assert created == [2]  # both subscriptions, the disabled one too


async def test_skipped_deliveries_are_listed_and_replayed_from_the_portal_once_enabled(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """An event while the subscription is disabled shows as skipped in the portal and the
    console's list; the portal's Replay is refused (409) until it is enabled, then queues."""
    harness, ids = await _setup(web_factory, fake_redis)
    client = harness.client
    off = {"enabled": False}
    patched = await client.patch(f"/v1/subscriptions/{ids['sub']}", json=off, headers=AUTH)
    assert patched.status == 200
    await _fan_out(fake_redis)
    store = DeliveryStore(fake_redis)
    [skipped] = (await store.page(subscription_id=ids["sub"], status=DeliveryStatus.SKIPPED))[0]
    await _open(client, (await _link(client, ids["sub"]))["url"])
    home = await (await client.get("/portal")).text()
    assert '<span class="badge skipped">skipped</span>' in home
    assert skipped.id in home
    page = f"/portal/deliveries/{skipped.id}"
    assert "Skipped: the subscription was disabled" in await (await client.get(page)).text()
    refused = await post_form(client, page, f"{page}/replay")
    assert refused.status == 409
    assert "enable it first" in await refused.text()
    assert (await store.get(skipped.id)).status is DeliveryStatus.SKIPPED  # type: ignore[union-attr]
    on = {"enabled": True}
    patched = await client.patch(f"/v1/subscriptions/{ids['sub']}", json=on, headers=AUTH)
    assert patched.status == 200
    replayed = await post_form(client, page, f"{page}/replay")
    assert replayed.status == 200
    assert (await store.get(skipped.id)).status is DeliveryStatus.PENDING  # type: ignore[union-attr]
