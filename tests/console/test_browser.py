"""The console and portal in a real headless Chromium (docs/contract.md §10).

An operator signs in, creates a subscription, sends a test event that reaches a
local receiver, watches a failing delivery's attempts, replays it, rotates a
secret and reads the overview chart; a partner opens a portal link and reaches
nothing else. ``<script>`` goes in through every field that comes from outside
(descriptions, URLs, Glider errors, subscriber responses) and stays text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, expect

from relay.core.commands import Action, Requester
from relay.core.ids import new_id
from relay.core.records import RequestRecord, RequestState
from relay.store import keys
from relay.webhooks.subscriptions import SubscriptionStore
from tests.console.browser import XSS, assert_inert, new_context, reload_until, shot
from tests.console.support import TOKEN
from tests.fixtures.dispatch import dispatching
from tests.fixtures.web import WebFactory
from tests.fixtures.webhooks import Receiver, status

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAGES = ("subscriptions", "deliveries", "operations", "dead-letters", "audit", "event-types")


async def _sign_in(page: Page) -> None:
    await page.goto("/console")
    await expect(page).to_have_url("/console/sign-in")
    await page.get_by_label("Admin token").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()


async def _create(page: Page, url: str, description: str) -> str:
    """Create a subscription through the form; its id (from the secret page)."""
    await page.get_by_role("link", name="subscriptions", exact=True).click()
    await page.get_by_label("URL").fill(url)
    await page.get_by_label("Description").fill(description)
    await page.get_by_role("button", name="Create subscription").click()
    await expect(page.locator("#secret")).to_contain_text("whsec_")
    sid = (await page.locator("code").first.inner_text()).strip()
    await page.get_by_role("link", name="Back to the subscription").click()
    return sid


async def _attempts(page: Page) -> int:
    return await page.locator("#attempts tr.attempt").count()


async def _glider_error(redis: aioredis.Redis) -> str:
    """A failed request whose Glider error is markup, as the worker would record it."""
    now = datetime.now(UTC)
    record = RequestRecord(
        request_id=new_id("req"),
        action=Action.REBALANCE,
        portfolio_id="pf_xss",
        state=RequestState.FAILED,
        requested_by=Requester(team_id="T1", user_id="U1", user_name="alice"),
        accepted_at=now,
        updated_at=now,
        error_code="glider_failed",
        error_message=XSS,
    )
    flat = [part for pair in record.to_hash().items() for part in pair]
    await redis.hset(keys.request(record.request_id), items=flat)
    await redis.zadd(keys.REQUESTS, {record.request_id: 0})
    return record.request_id


async def test_operator_journey_in_chromium(
    web_factory: WebFactory, real_redis: aioredis.Redis, receiver: Receiver, browser: Browser
) -> None:
    """Sign in, create, test event received, failing attempts, replay, rotate, chart; all inert."""
    harness = await web_factory(real_redis, relay_admin_token=TOKEN, relay_allow_private_urls=True)
    context = await new_context(browser, str(harness.client.make_url("")).rstrip("/"))
    page = await context.new_page()
    await _sign_in(page)
    ok_url = receiver.url("/ok") + "?q=" + XSS
    async with dispatching(real_redis):
        sid = await _create(page, ok_url, XSS)
        await expect(page.locator("#description")).to_have_text(XSS)
        await assert_inert(page)
        await shot(page, "subscription")
        await page.get_by_role("button", name="Send test event").click()
        [received] = await receiver.wait_for("/ok")
        assert b'"type":"relay.test"' in received.body
        await reload_until(page, _status_is(page, "succeeded"))

        await page.goto("/console/overview")
        failing = receiver.on("/fail", status(500, XSS))
        await _create(page, failing, "fails first")
        await page.get_by_role("button", name="Send test event").click()
        await reload_until(page, _status_is(page, "dead"))
        assert await _attempts(page) == 3
        await expect(page.locator("#attempts")).to_contain_text(XSS)
        await assert_inert(page)
        await shot(page, "delivery")
        receiver.on("/fail", status(200))
        await page.get_by_role("button", name="Replay").click()
        await reload_until(page, _status_is(page, "succeeded"))
        assert await _attempts(page) == 4

        await page.goto(f"/console/subscriptions/{sid}")
        await page.get_by_role("button", name="Rotate secret").click()
        await expect(page.locator("#secret")).to_contain_text("whsec_")
        assert (await SubscriptionStore(real_redis).get(sid)) is not None

    request_id = await _glider_error(real_redis)
    await page.goto(f"/console/operations/{request_id}")
    await expect(page.locator("#error")).to_contain_text(XSS)
    await assert_inert(page)
    await shot(page, "operation")
    for name in (
        "subscriptions",
        "deliveries",
        "operations",
        "dead-letters",
        "audit",
        "event-types",
    ):
        await page.goto("/console/overview")
        await page.get_by_role("link", name=name, exact=True).first.click()
        await expect(page).to_have_url(f"/console/{name}")
        await assert_inert(page)
        await shot(page, name)
    await page.goto("/console/overview")
    bars = page.locator("#chart rect.bar")
    assert await bars.count() == 60
    heights = [float(await bar.get_attribute("height") or 0) for bar in await bars.all()]
    assert max(heights) > 0
    await expect(page.locator("#chart polyline.rate")).to_have_count(1)
    await assert_inert(page)
    await shot(page, "overview")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url("/console/sign-in")
    await context.close()


def _status_is(page: Page, wanted: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await page.locator("#status").inner_text()) == wanted

    return check


async def test_portal_link_in_chromium_reaches_nothing_else(
    web_factory: WebFactory, fake_redis: aioredis.Redis, browser: Browser
) -> None:
    """A partner opens the link, sees their subscription and its catalog; console stays shut."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    client = harness.client
    created = await client.post(
        "/v1/subscriptions",
        json={"url": "https://93.184.216.34/p", "events": ["*"], "description": XSS},
        headers=AUTH,
    )
    sid = (await created.json())["id"]
    link = await (await client.post(f"/v1/subscriptions/{sid}/portal-link", headers=AUTH)).json()
    context = await new_context(browser, str(client.make_url("")).rstrip("/"))
    page = await context.new_page()
    await page.goto(link["url"])
    await expect(page).to_have_url("/portal")
    await expect(page.locator("#description")).to_have_text(XSS)
    await assert_inert(page)
    await page.get_by_role("button", name="Send test event").click()
    await expect(page.locator("#status")).to_have_text("pending")
    await page.goto("/portal")
    await shot(page, "portal")
    await page.get_by_role("link", name="Event catalog and verification snippets").click()
    await expect(page.get_by_text("from standardwebhooks.webhooks import Webhook")).to_be_visible()
    await shot(page, "portal-event-types")
    for path in (
        "/console",
        "/console/subscriptions",
        f"/console/subscriptions/{sid}",
        "/console/deliveries",
        "/console/audit",
        "/console/event-types",
    ):
        await page.goto(path)
        await expect(page).to_have_url("/console/sign-in")
    api = await page.goto("/v1/subscriptions")
    assert api is not None
    assert api.status == 401
    await context.close()


async def test_forged_form_posts_are_refused_in_chromium(
    web_factory: WebFactory, fake_redis: aioredis.Redis, browser: Browser
) -> None:
    """With a live session, a form post lacking the CSRF token is 403 and deletes nothing."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    client = harness.client
    created = await client.post(
        "/v1/subscriptions",
        json={"url": "https://93.184.216.34/f", "events": ["*"]},
        headers=AUTH,
    )
    sid = (await created.json())["id"]
    context = await new_context(browser, str(client.make_url("")).rstrip("/"))
    page = await context.new_page()
    await _sign_in(page)
    forged: list[dict[str, str | float | bool]] = [{}, {"csrf": "forged-token"}]
    for form in forged:
        answer = await context.request.post(f"/console/subscriptions/{sid}/delete", form=form)
        assert answer.status == 403
    # The same forged form, submitted by the page itself (a stale or injected form).
    await page.set_content(
        f'<form method="post" action="{client.make_url(f"/console/subscriptions/{sid}/delete")}">'
        "<button>go</button></form>"
    )
    async with page.expect_navigation():
        await page.get_by_role("button", name="go").click()
    await expect(page.get_by_role("alert")).to_contain_text("CSRF")
    assert await SubscriptionStore(fake_redis).get(sid) is not None
    await context.close()
