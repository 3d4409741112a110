"""axe-core in the page (headless Chromium): no serious or critical accessibility violation
on any console or portal page. axe-core comes from npm into tools/axe (.ci/run installs it)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from playwright.async_api import Browser, Page

from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from relay.webhooks.test_event import send_test_event
from tests import ROOT
from tests.console.support import TOKEN
from tests.fixtures.web import WebFactory

AXE = ROOT / "tools/axe/node_modules/axe-core/axe.min.js"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(" "))}));
}"""


async def _violations(page: Page, path: str) -> list[dict[str, Any]]:
    await page.goto(path)
    # The pages' CSP allows no script; this context bypasses it to run axe alone.
    await page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = await page.evaluate(RUN)
    return found


async def test_no_serious_or_critical_violations(
    web_factory: WebFactory, fake_redis: aioredis.Redis, browser: Browser
) -> None:
    """Every page, signed in (and the portal with a link), passes axe's serious/critical rules."""
    assert AXE.exists(), "axe-core missing: npm install --prefix tools/axe axe-core (.ci/run)"
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    sub = await SubscriptionStore(fake_redis).create(
        SubscriptionCreate(url="https://93.184.216.34/a", events=["*"], description="partner")
    )
    delivery = await send_test_event(fake_redis, sub.id)
    base = str(harness.client.make_url("")).rstrip("/")
    context = await browser.new_context(base_url=base, bypass_csp=True)
    page = await context.new_page()
    await page.goto("/console/sign-in")
    assert await _violations(page, "/console/sign-in") == []
    await page.get_by_label("Admin token").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    pages = [
        "/console/overview",
        "/console/subscriptions",
        f"/console/subscriptions/{sub.id}",
        "/console/deliveries",
        f"/console/deliveries/{delivery}",
        "/console/operations",
        "/console/dead-letters",
        "/console/audit",
        "/console/event-types",
    ]
    link = await harness.client.post(f"/v1/subscriptions/{sub.id}/portal-link", headers=AUTH)
    portal_url = (await link.json())["url"]
    found = {path: await _violations(page, path) for path in pages}
    await page.goto(portal_url)
    for path in ("/portal", f"/portal/deliveries/{delivery}", "/portal/event-types"):
        found[path] = await _violations(page, path)
    assert {path: v for path, v in found.items() if v} == {}
    await context.close()
