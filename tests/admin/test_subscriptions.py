"""Admin API for subscriptions: docs/contract.md §6.5 shapes, validation, SSRF refusals, 404s."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from relay.webhooks.models import EVENT_TYPES
from relay.webhooks.subscriptions import SubscriptionStore
from tests.fixtures.webhooks import AUTH, PUBLIC, Admin, ClientFactory, admin_client


async def _create(client: Admin, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/subscriptions", json={"url": PUBLIC, "events": ["*"], **body}, headers=AUTH
    )
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def test_create_returns_spec_fields_and_secret(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis
) -> None:
    """201 with id (sub_...), url, events, enabled, secret and createdAt."""
    client = await admin_client(aiohttp_client, fake_redis)
    created = await _create(client, events=["rebalance.failed"], description="partner A")
    assert created["id"].startswith("sub_")
    assert created["url"] == PUBLIC
    assert created["events"] == ["rebalance.failed"]
    assert created["enabled"] is True
    assert created["secret"].startswith("whsec_")
    assert created["createdAt"].endswith("Z")
    assert created["description"] == "partner A"
    shown = await (await client.get(f"/subscriptions/{created['id']}", headers=AUTH)).json()
    assert "secret" not in shown
    assert shown["id"] == created["id"]


async def test_list_pages_with_cursor(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis
) -> None:
    """GET /subscriptions pages newest first; nextCursor leads to the rest."""
    client = await admin_client(aiohttp_client, fake_redis)
    ids = [(await _create(client))["id"] for _ in range(3)]
    first = await (await client.get("/subscriptions?limit=2", headers=AUTH)).json()
    assert [s["id"] for s in first["data"]] == sorted(ids, reverse=True)[
        :2
    ]  # ids sort by creation time
    rest = await (
        await client.get(f"/subscriptions?limit=2&cursor={first['nextCursor']}", headers=AUTH)
    ).json()
    assert rest == {"data": [await _get(client, min(ids))], "nextCursor": None}
    assert (await client.get("/subscriptions?limit=501", headers=AUTH)).status == 400


async def _get(client: Admin, sid: str) -> dict[str, Any]:
    body: dict[str, Any] = await (await client.get(f"/subscriptions/{sid}", headers=AUTH)).json()
    return body


async def test_patch_delete_and_rotate(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis
) -> None:
    """PATCH changes url/events/enabled; rotate gives a new secret; DELETE then 404."""
    client = await admin_client(aiohttp_client, fake_redis)
    created = await _create(client)
    sid = created["id"]
    response = await client.patch(
        f"/subscriptions/{sid}",
        json={"enabled": False, "events": ["portfolio.paused"]},
        headers=AUTH,
    )
    assert response.status == 200
    patched = await response.json()
    assert (patched["enabled"], patched["events"]) == (False, ["portfolio.paused"])
    rotated = await (await client.post(f"/subscriptions/{sid}/rotate-secret", headers=AUTH)).json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    assert (await client.delete(f"/subscriptions/{sid}", headers=AUTH)).status == 204
    for method, path in [
        ("GET", f"/subscriptions/{sid}"),
        ("PATCH", f"/subscriptions/{sid}"),
        ("DELETE", f"/subscriptions/{sid}"),
        ("POST", f"/subscriptions/{sid}/rotate-secret"),
    ]:
        response = await client.request(method, path, json={"enabled": True}, headers=AUTH)
        assert response.status == 404, (method, path)
        assert (await response.json())["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": PUBLIC, "events": []}, "events"),
        ({"url": PUBLIC, "events": ["rebalance.nope"]}, "events"),
        ({"url": PUBLIC}, "events"),
        ({"events": ["*"]}, "url"),
        ({"url": PUBLIC, "events": "*"}, "events"),
        ({"url": PUBLIC, "events": ["*"], "extra": 1}, "extra"),
    ],
)
async def test_invalid_bodies_are_422_with_field(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis, body: dict[str, Any], field: str
) -> None:
    """Invalid subscription bodies answer 422 naming the field."""
    client = await admin_client(aiohttp_client, fake_redis)
    response = await client.post("/subscriptions", json=body, headers=AUTH)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "invalid"
    assert field in [d["field"].split(".")[0] for d in error["details"]]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.partner.test/x", "must start with https://"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://[::1]/x", "loopback"),
        ("https://[fd00::2]/x", "unique-local"),
        ("https://[::ffff:10.1.1.1]/x", "private"),
        ("https://[::127.0.0.1]/x", "loopback"),
        ("https://[::ffff:8.8.8.8]/x", "IPv4-mapped"),
        ("https://[64:ff9b:1::1]/x", "local-use NAT64"),
        ("https://[2002:c0a8:101::1]/x", "private"),
        ("https://nat64.partner.test/x", "link-local"),
        ("https://internal.partner.test/x", "private"),
        ("https://metadata.partner.test/x", "link-local"),
        ("https://v6local.partner.test/x", "unique-local"),
        ("https://unknown.partner.test/x", "does not resolve"),
    ],
)
async def test_ssrf_refusals_are_422_on_url(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis, url: str, message: str
) -> None:
    """Private, loopback, link-local and ULA targets (literal or by DNS) are refused at save."""
    client = await admin_client(aiohttp_client, fake_redis)
    response = await client.post("/subscriptions", json={"url": url, "events": ["*"]}, headers=AUTH)
    assert response.status == 422
    [detail] = (await response.json())["error"]["details"]
    assert detail["field"] == "url"
    assert message in detail["message"]
    assert (await SubscriptionStore(fake_redis).page(cursor=None, limit=5))[0] == []


async def test_patch_checks_the_new_url(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis
) -> None:
    """A PATCH to a private address is refused and changes nothing."""
    client = await admin_client(aiohttp_client, fake_redis)
    sid = (await _create(client))["id"]
    response = await client.patch(
        f"/subscriptions/{sid}", json={"url": "https://internal.partner.test/"}, headers=AUTH
    )
    assert response.status == 422
    assert (await _get(client, sid))["url"] == PUBLIC


async def test_private_urls_allowed_when_configured(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis
) -> None:
    """With RELAY_ALLOW_PRIVATE_URLS=true an http loopback receiver can subscribe."""
    client = await admin_client(aiohttp_client, fake_redis, allow_private=True)
    created = await _create(client, url="http://127.0.0.1:9999/hook")
    assert created["url"] == "http://127.0.0.1:9999/hook"


async def test_requires_bearer_token(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis
) -> None:
    """Without the admin token nothing is created."""
    client = await admin_client(aiohttp_client, fake_redis)
    response = await client.post("/subscriptions", json={"url": PUBLIC, "events": ["*"]})
    assert response.status == 401


@pytest.mark.parametrize(
    ("url", "meant"),
    [
        ("https://16843009/hook", "1.1.1.1"),
        ("https://01.01.01.01/hook", "1.1.1.1"),
        ("https://1.1.257/hook", "1.1.1.1"),
        ("https://0x01010101/hook", "1.1.1.1"),
        ("https://1.2.3.4.5/hook", None),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_ipv4_hosts_not_in_dotted_quad_form_are_422_on_url(
    aiohttp_client: ClientFactory,
    fake_redis: aioredis.Redis,
    url: str,
    meant: str | None,
    allow_private: bool,
) -> None:
    """Decimal, octal, short or hex IPv4 hosts (never deliverable: aiohttp refuses to
    connect, no certificate names them) are refused at save and on PATCH, saying how to
    write the address; nothing is saved, whatever RELAY_ALLOW_PRIVATE_URLS says."""
    client = await admin_client(aiohttp_client, fake_redis, allow_private=allow_private)
    sid = (await _create(client))["id"]
    created = await client.post("/subscriptions", json={"url": url, "events": ["*"]}, headers=AUTH)
    patched = await client.patch(f"/subscriptions/{sid}", json={"url": url}, headers=AUTH)
    for answer in (created, patched):
        assert answer.status == 422
        [detail] = (await answer.json())["error"]["details"]
        assert detail["field"] == "url"
        assert "is not an IPv4 address in dotted-quad form" in detail["message"]
        assert (f"write it as {meant}" in detail["message"]) == (meant is not None)
    assert [s.id for s in (await SubscriptionStore(fake_redis).page(cursor=None, limit=5))[0]] == [
        sid
    ]
    assert (await _get(client, sid))["url"] == PUBLIC


async def test_an_unknown_event_type_is_refused_naming_the_valid_ones(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis
) -> None:
    """The 422 on events lists every type one may subscribe to, and '*'."""
    client = await admin_client(aiohttp_client, fake_redis)
    body = {"url": PUBLIC, "events": ["relay.test"]}
    answer = await client.post("/subscriptions", json=body, headers=AUTH)
    assert answer.status == 422
    [detail] = (await answer.json())["error"]["details"]
    assert detail["field"] == "events"
    assert "SPEC" not in detail["message"]
    assert "'relay.test'" in detail["message"]
    assert ", ".join(sorted(EVENT_TYPES)) + ", or '*'" in detail["message"]
