"""Admin API for deliveries: listing with attempts, replay, recover-since, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from relay.webhooks.models import DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionPatch, SubscriptionStore
from tests.fixtures.dispatch import delivery_in, dispatching, event, eventually, publish
from tests.fixtures.webhooks import AUTH, Admin, ClientFactory, Receiver, admin_client, status


async def _list(client: Admin, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/deliveries{query}", headers=AUTH)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_list_filters_and_shows_attempts(
    aiohttp_client: ClientFactory, any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """Each delivery has id, subscriptionId, eventType, webhookId, status and its attempts."""
    subs = SubscriptionStore(any_redis)
    ok = await subs.create(SubscriptionCreate(url=receiver.url("/ok"), events=["*"]))
    bad = await subs.create(
        SubscriptionCreate(url=receiver.on("/bad", status(500, "nope")), events=["*"])
    )
    client = await admin_client(aiohttp_client, any_redis)
    async with dispatching(any_redis):
        await publish(any_redis, event())
        await delivery_in(any_redis, DeliveryStatus.DEAD)
        await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    everything = await _list(client)
    assert len(everything["data"]) == 2
    assert everything["nextCursor"] is None
    [dead] = (await _list(client, f"?subscription={bad.id}&status=dead"))["data"]
    assert dead["subscriptionId"] == bad.id
    assert dead["eventType"] == "rebalance.completed"
    assert dead["webhookId"].startswith("msg_")
    assert dead["status"] == "dead"
    first = dead["attempts"][0]
    assert first["statusCode"] == 500
    assert first["responseBody"] == "nope"
    assert isinstance(first["latencyMs"], int)
    assert first["at"].endswith("Z")
    assert "error" in first
    [good] = (await _list(client, "?status=succeeded"))["data"]
    assert good["subscriptionId"] == ok.id
    assert (await _list(client, "?status=pending"))["data"] == []
    page = await _list(client, "?limit=1")
    assert len(page["data"]) == 1
    assert page["nextCursor"] is not None
    shown = await (await client.get(f"/deliveries/{dead['id']}", headers=AUTH)).json()
    assert shown == dead


async def test_replay_and_its_refusals(
    aiohttp_client: ClientFactory, any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """Replay queues a final delivery (202); pending 409, disabled 409, unknown 404."""
    url = receiver.on("/flaky", status(500))
    subs = SubscriptionStore(any_redis)
    sub = await subs.create(SubscriptionCreate(url=url, events=["*"]))
    client = await admin_client(aiohttp_client, any_redis)
    async with dispatching(any_redis):
        await publish(any_redis, event())
        [dead] = await delivery_in(any_redis, DeliveryStatus.DEAD)
    receiver.on("/flaky", status(200))
    await subs.update(sub.id, SubscriptionPatch(enabled=False))
    refused = await client.post(f"/deliveries/{dead.id}/replay", headers=AUTH)
    assert refused.status == 409
    assert (await refused.json())["error"]["code"] == "subscription_disabled"
    await subs.update(sub.id, SubscriptionPatch(enabled=True))
    response = await client.post(f"/deliveries/{dead.id}/replay", headers=AUTH)
    assert response.status == 202
    assert (await response.json())["status"] == "pending"
    again = await client.post(f"/deliveries/{dead.id}/replay", headers=AUTH)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "not_final"
    async with dispatching(any_redis):
        [done] = await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    assert done.id == dead.id
    assert len(receiver.to("/flaky")) == 4
    missing = await client.post("/deliveries/dlv_nope/replay", headers=AUTH)
    assert missing.status == 404
    assert (await client.get("/deliveries/dlv_nope", headers=AUTH)).status == 404


async def test_recover_since_over_http(
    aiohttp_client: ClientFactory, any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """POST /deliveries/recover re-sends every dead delivery since the given time."""
    url = receiver.on("/outage", status(503))
    sub = await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    client = await admin_client(aiohttp_client, any_redis)
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    async with dispatching(any_redis):
        await publish(any_redis, event(), event())

        async def both_dead() -> bool:
            return len((await _list(client, "?status=dead"))["data"]) == 2

        await eventually(both_dead)
        receiver.on("/outage", status(200))
        response = await client.post(
            "/deliveries/recover", json={"since": since, "subscription": sub.id}, headers=AUTH
        )
        assert response.status == 202
        assert await response.json() == {"recovered": 2}

        async def both_done() -> bool:
            return len((await _list(client, "?status=succeeded"))["data"]) == 2

        await eventually(both_done)


async def test_skipped_deliveries_listed_and_recovered_over_http(
    aiohttp_client: ClientFactory, any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """A disabled subscription's events list as skipped; recover is a 409 while it is
    disabled (nothing changes) and queues them once it is enabled."""
    subs = SubscriptionStore(any_redis)
    sub = await subs.create(SubscriptionCreate(url=receiver.url("/back"), events=["*"]))
    await subs.update(sub.id, SubscriptionPatch(enabled=False))
    client = await admin_client(aiohttp_client, any_redis)
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    body = {"since": since, "subscription": sub.id}
    async with dispatching(any_redis):
        await publish(any_redis, event())
        [skipped] = await delivery_in(any_redis, DeliveryStatus.SKIPPED)
        [listed] = (await _list(client, f"?subscription={sub.id}&status=skipped"))["data"]
        assert (listed["id"], listed["status"], listed["attempts"]) == (skipped.id, "skipped", [])
        refused = await client.post("/deliveries/recover", json=body, headers=AUTH)
        assert refused.status == 409
        error = (await refused.json())["error"]
        assert error["code"] == "subscription_disabled"
        assert "enable it first" in error["message"]
        replay = await client.post(f"/deliveries/{skipped.id}/replay", headers=AUTH)
        assert replay.status == 409
        assert len((await _list(client, "?status=skipped"))["data"]) == 1
        await subs.update(sub.id, SubscriptionPatch(enabled=True))
        recovered = await client.post("/deliveries/recover", json=body, headers=AUTH)
        assert recovered.status == 202
        assert await recovered.json() == {"recovered": 1}
        await receiver.wait_for("/back")
        await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    assert (await _list(client, "?status=skipped"))["data"] == []


async def test_bad_queries_and_bodies(
    aiohttp_client: ClientFactory, fake_redis: aioredis.Redis
) -> None:
    """Unknown status 400; recover needs an aware past timestamp (422 on since)."""
    client = await admin_client(aiohttp_client, fake_redis)
    response = await client.get("/deliveries?status=lost", headers=AUTH)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_status"
    for body in (
        {},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},
        {"since": "2999-01-01T00:00:00Z"},
    ):
        response = await client.post("/deliveries/recover", json=body, headers=AUTH)
        assert response.status == 422, body
        assert (await response.json())["error"]["details"][0]["field"] == "since"
