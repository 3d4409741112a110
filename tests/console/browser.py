"""Headless Chromium for the console's browser tests: the system's ``/usr/bin/chromium``
(Debian's package, installed by .ci/run) driven by Playwright; never a downloaded browser.

``GLIDER_RELAY_SCREENSHOTS=docs/console`` makes :func:`shot` save each page there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable

from playwright.async_api import Browser, BrowserContext, Page

from tests import ROOT

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 5000
XSS = '<script>window.__injected = 1</script><img src=x onerror="window.__injected = 2">'


async def new_context(browser: Browser, base_url: str) -> BrowserContext:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    return context


async def assert_inert(page: Page) -> None:
    """No script element and no injected handler ran: outside text stayed text."""
    assert await page.evaluate("document.querySelectorAll('script').length") == 0
    assert await page.evaluate("window.__injected === undefined")


async def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot as docs/console/<name>.png when asked to."""
    folder = os.environ.get("GLIDER_RELAY_SCREENSHOTS")
    if folder:
        path = ROOT / folder / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(path), full_page=True)


async def reload_until(
    page: Page, check: Callable[[], Awaitable[bool]], within: float = 10
) -> None:
    """Reload ``page`` until ``check`` holds (server-rendered pages have no live update)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{page.url}: condition not met within {within} s")
        await page.reload()
