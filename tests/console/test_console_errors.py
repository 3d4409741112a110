"""Console and portal error pages (docs/contract.md §10): whatever goes wrong, an HTML page
with the page headers, never JSON: bodies that are not a form, bad cursors, a bug, Redis down."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import ClientResponse, FormData

from relay.console import pages, portal
from relay.console.web import HEADERS
from relay.core.ids import ulid
from relay.store.connection import connect
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests.console.support import TOKEN, Client, csrf_of, post_form, sign_in
from tests.fixtures.chaos import ServerFactory
from tests.fixtures.web import WebFactory

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOOK = "https://hooks.partner.test/a"


async def _page(answer: ClientResponse, status: int) -> str:
    """The answer's HTML, asserting its status, that it is a page and has every page header."""
    text = await answer.text()
    assert answer.status == status, text
    assert answer.content_type == "text/html", text
    for name, value in HEADERS.items():
        assert answer.headers.get(name) == value, name
    return text


def _multipart(**fields: str) -> FormData:
    return FormData(fields, default_to_multipart=True)


async def _portal_session(client: Client, sid: str) -> None:
    """Open a portal link to ``sid`` on ``client`` (the session cookie is kept)."""
    link = await client.post(f"/v1/subscriptions/{sid}/portal-link", json={}, headers=AUTH)
    url = (await link.json())["url"]
    opened = await client.get("/portal/" + url.rsplit("/portal/", 1)[1], allow_redirects=False)
    assert opened.status == 303


def _no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_bodies_that_are_not_a_form_get_a_415_page_and_change_nothing(
    web_factory: WebFactory, fake_redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Multipart (curl -F, enctype=multipart/form-data) or JSON to a console or portal form,
    with or without a session and a valid CSRF token: 415 naming the form type, no ERROR."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    client = harness.client
    form = await (await client.get("/console/sign-in")).text()
    anonymous = await client.post(
        "/console/sign-in", data=_multipart(csrf=csrf_of(form), token=TOKEN)
    )
    assert "application/x-www-form-urlencoded" in await _page(anonymous, 415)
    assert anonymous.headers["Accept"] == "application/x-www-form-urlencoded"
    assert "gr_console=" not in anonymous.headers.get("Set-Cookie", "")  # no session opened
    await sign_in(client)
    csrf = csrf_of(await (await client.get("/console/subscriptions")).text())
    created = await client.post(
        "/console/subscriptions", data=_multipart(csrf=csrf, url=HOOK, events="*")
    )
    await _page(created, 415)
    as_json = await client.post("/console/subscriptions", json={"csrf": csrf, "url": HOOK})
    await _page(as_json, 415)
    assert (await SubscriptionStore(fake_redis).page(cursor=None, limit=5))[0] == []
    sub = await SubscriptionStore(fake_redis).create(SubscriptionCreate(url=HOOK, events=["*"]))
    await _portal_session(client, sub.id)
    portal_csrf = csrf_of(await (await client.get("/portal")).text())
    tested = await client.post("/portal/test", data=_multipart(csrf=portal_csrf))
    await _page(tested, 415)
    assert (await DeliveryStore(fake_redis).page(subscription_id=sub.id, limit=5))[0] == []
    _no_error_logged(caplog)


async def test_list_pages_refuse_a_bad_cursor_with_their_own_page(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """Every paged console list, and the portal's: a cursor that is not an id of that list is
    a 400 page saying so (not a blank or restarted list), and so is a filter naming no
    subscription or no status; a well-formed one pages on."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    client = harness.client
    sub = await SubscriptionStore(fake_redis).create(SubscriptionCreate(url=HOOK, events=["*"]))
    await sign_in(client)
    lists = {
        "/console/subscriptions": "sub",
        f"/console/subscriptions/{sub.id}": "dlv",
        "/console/deliveries": "dlv",
        "/console/operations": "req",
        "/console/dead-letters": "dlv",
    }
    for path, prefix in lists.items():
        assert (await client.get(path, params={"cursor": f"{prefix}_{ulid()}"})).status == 200
        for cursor in ("garbage", "zzzzzz", f"evt_{ulid()}", f"{prefix}_{ulid().lower()}"):
            answer = await client.get(path, params={"cursor": cursor})
            assert "cursor" in await _page(answer, 400), (path, cursor)
    refused = await client.get("/console/deliveries", params={"subscription": "nope"})
    assert "subscription" in await _page(refused, 400)
    await _portal_session(client, sub.id)
    assert (await client.get("/portal", params={"cursor": f"dlv_{ulid()}"})).status == 200
    assert "cursor" in await _page(await client.get("/portal", params={"cursor": "x"}), 400)
    assert "status" in await _page(await client.get("/portal", params={"status": "nope"}), 400)


async def test_an_unexpected_error_is_a_500_page_that_says_nothing_of_it(
    web_factory: WebFactory,
    fake_redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug behind a console or portal page answers the 500 page (not JSON), with the page
    headers and without the exception's text; the log has the traceback."""

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug with a secret in it")

    monkeypatch.setattr(pages, "overview", explode)
    monkeypatch.setattr(portal, "event_type_list", explode)
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    client = harness.client
    sub = await SubscriptionStore(fake_redis).create(SubscriptionCreate(url=HOOK, events=["*"]))
    await sign_in(client)
    console_page = await _page(await client.get("/console/overview"), 500)
    await _portal_session(client, sub.id)
    portal_page = await _page(await client.get("/portal/event-types"), 500)
    for text in (console_page, portal_page):
        assert "a bug" not in text
    traced = {
        r.__dict__["path"] for r in caplog.records if r.exc_info and "a bug" in str(r.exc_info[1])
    }
    assert {"/console/overview", "/portal/event-types"} <= traced


async def test_redis_down_is_a_503_page(
    web_factory: WebFactory, redis_servers: ServerFactory
) -> None:
    """A real Redis stopped under the running app: console and portal pages, and the sign-in,
    answer the 503 page saying the store is unreachable."""
    server = await redis_servers()
    redis = connect(server.url)
    try:
        harness = await web_factory(redis, relay_admin_token=TOKEN)
        client = harness.client
        sub = await SubscriptionStore(redis).create(SubscriptionCreate(url=HOOK, events=["*"]))
        await sign_in(client)
        await _portal_session(client, sub.id)
        form = await (await client.get("/console/sign-in")).text()
        await server.kill()
        for answer in (
            await client.get("/console/overview"),
            await client.get("/portal"),
            await client.post("/console/sign-in", data={"csrf": csrf_of(form), "token": TOKEN}),
        ):
            assert "store (Redis) is unreachable" in await _page(answer, 503)
    finally:
        await redis.aclose()


async def test_console_refuses_ipv4_hosts_not_in_dotted_quad_form(
    web_factory: WebFactory, fake_redis: aioredis.Redis
) -> None:
    """The console's create form runs the admin API's check: a decimal IPv4 host is a 422
    page naming the dotted quad to write, and nothing is saved."""
    harness = await web_factory(fake_redis, relay_admin_token=TOKEN)
    await sign_in(harness.client)
    refused = await post_form(
        harness.client,
        "/console/subscriptions",
        "/console/subscriptions",
        url="https://16843009/hook",
        events="*",
    )
    assert "write it as 1.1.1.1" in await _page(refused, 422)
    assert (await SubscriptionStore(fake_redis).page(cursor=None, limit=5))[0] == []
