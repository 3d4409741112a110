"""The console over HTTP (docs/contract.md §10): sign-in, sessions, CSRF, pages, actions."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.store import dead_letters, keys
from relay.store.audit import AuditFilter, AuditStore
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests.console.support import TOKEN, csrf_of, post_form, sign_in
from tests.fixtures.dead_letters import given_up
from tests.fixtures.web import WebFactory

PAGES = (
    "overview",
    "subscriptions",
    "deliveries",
    "operations",
    "dead-letters",
    "audit",
    "event-types",
)


async def test_sign_in_sets_a_strict_http_only_session_and_every_page_renders(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """The admin token opens a session (HttpOnly, SameSite=Strict); each page is linked and 200."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    client = harness.client
    assert (await client.get("/console/overview", allow_redirects=False)).status == 303
    form = await (await client.get("/console/sign-in")).text()
    answer = await client.post(
        "/console/sign-in", data={"csrf": csrf_of(form), "token": TOKEN}, allow_redirects=False
    )
    assert answer.status == 303
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Secure" not in cookie
    overview = await (await client.get("/console/overview")).text()
    for name in PAGES:
        assert f'href="/console/{name}">{name}</a>' in overview
        page = await client.get(f"/console/{name}")
        assert page.status == 200, name
        assert "script-src" not in page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert await fake_redis.keys(keys.CONSOLE_SESSION + "*")


async def test_secure_cookie_behind_https(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """Behind a proxy that says X-Forwarded-Proto: https, the session cookie is Secure."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    https = {"X-Forwarded-Proto": "https"}
    form = await (await harness.client.get("/console/sign-in", headers=https)).text()
    answer = await harness.client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(form), "token": TOKEN},
        headers=https,
        allow_redirects=False,
    )
    assert "Secure" in answer.headers["Set-Cookie"]


async def test_wrong_token_is_refused_and_rate_limited_per_client(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """Five wrong tokens, then 429 with Retry-After even for the right one; each failure audited."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    for _ in range(5):
        assert (await sign_in(harness.client, "wrong-token-xxxxxxxx")).status == 401
    blocked = await sign_in(harness.client)
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) > 0
    entries, _ = await AuditStore(fake_redis).page(AuditFilter(), limit=50)
    assert [e.action.value for e in entries] == ["console.sign_in_failed"] * 6
    assert all("wrong-token" not in e.to_json() for e in entries)


async def test_forms_without_the_csrf_token_are_refused(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """A signed-in POST without (or with a wrong) CSRF token is 403 and changes nothing."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    sub = await SubscriptionStore(fake_redis).create(
        SubscriptionCreate(url="https://hooks.partner.test/a", events=["*"])
    )
    await sign_in(harness.client)
    for data in ({}, {"csrf": "forged"}):
        answer = await harness.client.post(f"/console/subscriptions/{sub.id}/delete", data=data)
        assert answer.status == 403
    no_session_csrf = await harness.client.post("/console/sign-in", data={"token": TOKEN})
    assert no_session_csrf.status == 403
    assert await SubscriptionStore(fake_redis).get(sub.id) is not None


async def test_subscription_actions_go_through_the_admin_code(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """Create shows the secret once; disable, rotate, test and delete work; unsafe URLs refused."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    client = harness.client
    await sign_in(client)
    refused = await post_form(
        client,
        "/console/subscriptions",
        "/console/subscriptions",
        url="http://127.0.0.1:1/x",
        events="*",
    )
    assert refused.status == 422
    created = await post_form(
        client,
        "/console/subscriptions",
        "/console/subscriptions",
        url="https://93.184.216.34/hook",
        events="rebalance.failed",
        description="partner <b>",
    )
    assert created.status == 200
    html = await created.text()
    assert "whsec_" in html
    [sub] = (await SubscriptionStore(fake_redis).page(cursor=None, limit=5))[0]
    page = f"/console/subscriptions/{sub.id}"
    assert "whsec_" not in await (await client.get(page)).text()
    assert "partner &lt;b&gt;" in await (await client.get(page)).text()
    tested = await post_form(client, page, f"{page}/test")
    assert tested.status == 200
    assert "relay.test" in await tested.text()
    rotated = await post_form(client, page, f"{page}/rotate-secret")
    assert "whsec_" in await rotated.text()
    await post_form(client, page, f"{page}/disable")
    assert not (await SubscriptionStore(fake_redis).get(sub.id)).enabled  # type: ignore[union-attr]
    overview = await (await client.get("/console/overview")).text()
    assert 'class="disabled"' in overview
    await post_form(client, page, f"{page}/delete")
    assert await SubscriptionStore(fake_redis).get(sub.id) is None
    [test_delivery] = (await DeliveryStore(fake_redis).page(limit=5))[0]
    assert test_delivery.status is DeliveryStatus.PENDING


async def test_sign_out_ends_the_session(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """After Sign out, the old cookie opens nothing."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    await sign_in(harness.client)
    out = await post_form(harness.client, "/console/overview", "/console/sign-out")
    assert out.url.path == "/console/sign-in"
    assert not await fake_redis.keys(keys.CONSOLE_SESSION + "*")
    again = await harness.client.get("/console/overview", allow_redirects=False)
    assert again.status == 303


async def test_bad_input_gets_an_html_error_page_and_changes_nothing(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """Unknown ids, bad filters, a bad cursor and refused fields: an escaped HTML error page."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    client = harness.client
    sub = await SubscriptionStore(fake_redis).create(
        SubscriptionCreate(url="https://hooks.partner.test/a", events=["*"])
    )
    await sign_in(client)
    for path, status in (
        ("/console/subscriptions/sub_nope", 404),
        (f"/console/subscriptions/{sub.id}:dlvs", 404),
        ("/console/deliveries/dlv_nope", 404),
        ("/console/operations/req_nope", 404),
        ("/console/deliveries?status=<b>x", 400),
        ("/console/operations?portfolio=<script>", 400),
        ("/console/audit?cursor=<script>", 400),
        ("/console/audit?action=nope", 400),
        ("/console/no-such-page", 404),
    ):
        answer = await client.get(path)
        assert answer.status == status, path
        assert answer.content_type == "text/html", path
        assert "<script>" not in await answer.text()
    page = f"/console/subscriptions/{sub.id}"
    malformed = await post_form(client, page, f"{page}:due/delete")
    assert malformed.status == 404
    refused = await post_form(client, page, f"{page}/edit", url="ftp://x", events="nope")
    assert refused.status == 422
    assert "events" in await refused.text()
    recover = await post_form(
        client, "/console/deliveries", "/console/deliveries/recover", since="x"
    )
    assert recover.status == 422
    unchanged = await SubscriptionStore(fake_redis).get(sub.id)
    assert unchanged is not None
    assert unchanged.url == "https://hooks.partner.test/a"


async def test_dead_letters_replay_and_the_request_timeline(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """Dead commands and replies are listed with Replay (the admin API's code); a request's
    page shows its timeline."""
    given = await given_up(fake_redis)
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    await sign_in(harness.client)
    page = await (await harness.client.get("/console/dead-letters")).text()
    assert given.stuck in page
    assert given.paused in page
    [letter] = [
        d
        for d in (await dead_letters.page(fake_redis, stream=None, cursor=None, limit=5))[0]
        if d.requestId == given.stuck
    ]
    answer = await post_form(
        harness.client, "/console/dead-letters", f"/console/dead-letters/{letter.id}/replay"
    )
    assert answer.status == 200
    assert answer.url.path == "/console/dead-letters"
    assert await dead_letters.get(fake_redis, letter.id) is None
    again = await post_form(
        harness.client, "/console/dead-letters", f"/console/dead-letters/{letter.id}/replay"
    )
    assert again.status == 404
    timeline_page = await (await harness.client.get(f"/console/operations/{given.paused}")).text()
    assert 'id="timeline"' in timeline_page
    assert "accepted from" in timeline_page
