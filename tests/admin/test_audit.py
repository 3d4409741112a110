"""The audit log over the admin API: every admin change leaves its entry, read back with
``GET /v1/audit`` (shape, filters, cursor, errors), which nothing can edit or delete."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from relay.core.redact import register_secrets, unregister_secrets
from relay.store import keys
from relay.webhooks.models import DeliveryStatus
from tests.fixtures.dispatch import delivery_in, dispatching, event, publish
from tests.fixtures.web import WebFactory
from tests.fixtures.webhooks import (
    ADMIN_TOKEN,
    AUTH,
    Admin,
    ClientFactory,
    Receiver,
    admin_client,
    status,
)

WEB_AUTH = {"Authorization": "Bearer test-admin-token"}  # tests/fixtures/web.py's token


@pytest.fixture
def admin_token_redacted() -> Iterator[None]:
    """The admin token registered for redaction, as the web's start-up does."""
    register_secrets([ADMIN_TOKEN])
    yield
    unregister_secrets([ADMIN_TOKEN])


async def _audit(client: Admin, query: str = "", *, prefix: str = "") -> dict[str, Any]:
    response = await client.get(f"{prefix}/audit{query}", headers=AUTH if not prefix else WEB_AUTH)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def _ok(response: Any, expected: int) -> dict[str, Any]:
    assert response.status == expected, await response.text()
    if expected == 204:
        return {}
    body: dict[str, Any] = await response.json()
    return body


async def _admin_changes(client: Admin, redis: aioredis.Redis, receiver: Receiver) -> list[str]:
    """Create, change, rotate, replay, recover and delete over HTTP; secrets shown on the way."""
    url = receiver.url(f"/hook?token={ADMIN_TOKEN}")
    body = {"url": url, "events": ["*"], "description": f"partner {ADMIN_TOKEN}"}
    created = await _ok(await client.post("/subscriptions", json=body, headers=AUTH), 201)
    sid = created["id"]
    patch = {"events": ["rebalance.failed", "rebalance.completed"], "description": "again"}
    await _ok(await client.patch(f"/subscriptions/{sid}", json=patch, headers=AUTH), 200)
    rotated = await _ok(await client.post(f"/subscriptions/{sid}/rotate-secret", headers=AUTH), 200)
    dead_url = receiver.on("/dead", status(500))
    failing = {"url": dead_url, "events": ["*"]}
    dying = await _ok(await client.post("/subscriptions", json=failing, headers=AUTH), 201)
    async with dispatching(redis):
        await publish(redis, event())
        await delivery_in(redis, DeliveryStatus.DEAD)
        [done] = await delivery_in(redis, DeliveryStatus.SUCCEEDED)
    await _ok(await client.post(f"/deliveries/{done.id}/replay", headers=AUTH), 202)
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    recovered = await client.post("/deliveries/recover", json={"since": since}, headers=AUTH)
    assert (await _ok(recovered, 202))["recovered"] == 1
    await _ok(await client.delete(f"/subscriptions/{sid}", headers=AUTH), 204)
    return [sid, dying["id"], created["secret"], rotated["secret"], done.id]


@pytest.mark.usefixtures("admin_token_redacted")
async def test_every_admin_change_is_audited_once_with_no_secret(
    aiohttp_client: ClientFactory, any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """created, changed, secret rotated, delivery replayed, deliveries recovered, deleted:
    one entry each, actor {"source": "admin"}, bounded detail, no secret in any of them."""
    client = await admin_client(aiohttp_client, any_redis, allow_private=True)
    sid, dying, *secrets, delivery_id = await _admin_changes(client, any_redis, receiver)
    page = await _audit(client)
    rows = [(e["action"], e["subscriptionId"]) for e in page["data"]]
    assert rows == [
        ("subscription.deleted", sid),
        ("deliveries.recovered", None),
        ("delivery.replayed", sid),
        ("subscription.created", dying),
        ("subscription.secret_rotated", sid),
        ("subscription.changed", sid),
        ("subscription.created", sid),
    ]
    by_action = {e["action"]: e for e in page["data"]}
    assert all(e["actor"] == {"source": "admin"} for e in page["data"])
    assert all(e["id"].startswith("aud_") and e["at"].endswith("Z") for e in page["data"])
    assert by_action["subscription.created"]["detail"] == f"{receiver.url('')[:-1]}; events *"
    assert by_action["subscription.changed"]["detail"] == (
        "events rebalance.failed,rebalance.completed; description"
    )
    assert by_action["delivery.replayed"]["detail"] == f"{delivery_id}: 1 queued"
    assert by_action["deliveries.recovered"]["detail"].endswith(": 1 queued")
    stored = str(await any_redis.xrange(keys.AUDIT))
    for secret in [ADMIN_TOKEN, *secrets]:
        assert secret not in stored
    assert all(len(e["detail"] or "") <= 300 for e in page["data"])


async def test_refused_admin_requests_append_nothing(
    aiohttp_client: ClientFactory, any_redis: aioredis.Redis
) -> None:
    """A 404 rotate or delete, a 422 create and a 404 replay change nothing, so log nothing."""
    client = await admin_client(aiohttp_client, any_redis)
    assert (await client.post("/subscriptions/sub_nope/rotate-secret", headers=AUTH)).status == 404
    assert (await client.delete("/subscriptions/sub_nope", headers=AUTH)).status == 404
    bad = {"url": "https://10.0.0.1/x", "events": ["*"]}
    assert (await client.post("/subscriptions", json=bad, headers=AUTH)).status == 422
    assert (await client.post("/deliveries/dlv_nope/replay", headers=AUTH)).status == 404
    assert await any_redis.xlen(keys.AUDIT) == 0


async def test_the_route_filters_pages_and_refuses_bad_queries(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """GET /v1/audit over the web app: list shape, newest first, filters, cursor paging,
    limit 1..500, and a JSON 400 naming each bad parameter."""
    web = await web_factory(any_redis)
    await web.command("/rebalance", "pf_a", user_id="U1", user_name="alice")
    await web.command("/pause", "pf_b", user_id="U2", user_name="bob")
    await web.command("/resume", "pf_a", user_id="U9")  # refused: U9 is not allowed
    every = await _audit(web.client, prefix="/v1")
    assert every["nextCursor"] is None
    assert [(e["action"], e["portfolioId"]) for e in every["data"]] == [
        ("command.refused", "pf_a"),
        ("command.received", "pf_b"),
        ("command.received", "pf_a"),
    ]
    assert every["data"][0]["actor"]["userId"] == "U9"
    assert len((await _audit(web.client, "?portfolio=pf_a", prefix="/v1"))["data"]) == 2
    [bob] = (await _audit(web.client, "?user=bob", prefix="/v1"))["data"]
    assert bob["actor"] == {"source": "slack", "teamId": "T1", "userId": "U2", "userName": "bob"}
    refused = await _audit(web.client, "?action=command.refused&user=U9", prefix="/v1")
    assert len(refused["data"]) == 1
    at = every["data"][1]["at"]
    window = await _audit(web.client, f"?since={at}&until={at}", prefix="/v1")
    assert [e["id"] for e in window["data"]] == [every["data"][1]["id"]]
    first = await _audit(web.client, "?limit=2", prefix="/v1")
    assert first["data"] == every["data"][:2]
    rest = await _audit(web.client, f"?limit=2&cursor={first['nextCursor']}", prefix="/v1")
    assert rest == {"data": every["data"][2:], "nextCursor": None}
    for query, code in [
        ("?limit=501", "bad_limit"),
        ("?limit=0", "bad_limit"),
        ("?cursor=sub_x", "bad_cursor"),
        ("?action=command.deleted", "bad_action"),
        ("?since=yesterday", "bad_since"),
        ("?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "bad_until"),
        ("?portfolio=pf%3Ax", "bad_portfolio"),
        (f"?user={'u' * 81}", "bad_user"),
    ]:
        response = await web.client.get(f"/v1/audit{query}", headers=WEB_AUTH)
        assert response.status == 400, query
        assert (await response.json())["error"]["code"] == code


async def test_no_route_edits_or_deletes_an_entry(
    web_factory: WebFactory, any_redis: aioredis.Redis
) -> None:
    """PUT, PATCH, DELETE and POST on /v1/audit are 405 in the JSON error shape (401 without
    the token), and the log is unchanged after them."""
    web = await web_factory(any_redis)
    await web.command("/rebalance", "pf_a")
    before = await any_redis.xrange(keys.AUDIT)
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        for path in ("/v1/audit", f"/v1/audit/{'aud_x'}"):
            response = await web.client.request(method, path, headers=WEB_AUTH, json={})
            assert response.status in (404, 405), (method, path)
            assert "error" in await response.json()
        response = await web.client.request(method, "/v1/audit", headers=WEB_AUTH, json={})
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"
        assert response.headers["Allow"] == "GET"
    assert (await web.client.get("/v1/audit")).status == 401
    assert await any_redis.xrange(keys.AUDIT) == before
