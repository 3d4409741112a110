"""Subscriptions and delivery records in Redis: CRUD, routing, fan-out guard, retention."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from relay.core.events import EventType
from relay.core.ids import ulid
from relay.store import keys
from relay.store.connection import text
from relay.store.queue import ensure_group
from relay.webhooks.deliveries import RETENTION_MS, DeliveryStore
from relay.webhooks.fanout import FanOutBatcher, delivery_ulid, fan_out, plan
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.oncall import OnCallRules
from relay.webhooks.subscriptions import (
    SubscriptionCreate,
    SubscriptionPatch,
    SubscriptionStore,
)
from tests.fixtures.dispatch import event, publish

URL = "https://hooks.partner.example/glider"


async def test_create_get_patch_delete(any_redis: aioredis.Redis) -> None:
    """A subscription round-trips; its secret is shown on create only; delete forgets it."""
    store = SubscriptionStore(any_redis)
    created = await store.create(SubscriptionCreate(url=URL, events=["rebalance.failed"]))
    assert created.id.startswith("sub_")
    assert created.secret is not None
    assert created.secret.startswith("whsec_")
    fetched = await store.get(created.id)
    assert fetched is not None
    assert fetched.secret is None
    assert fetched.public().keys() >= {"id", "url", "events", "enabled", "createdAt"}
    assert "secret" not in fetched.public()
    patched = await store.update(created.id, SubscriptionPatch(enabled=False, events=["*"]))
    assert patched is not None
    assert (patched.enabled, patched.events) == (False, ["*"])
    assert await store.delete(created.id)
    assert await store.get(created.id) is None
    assert not await store.delete(created.id)
    assert await store.update(created.id, SubscriptionPatch(enabled=True)) is None


async def test_routing_follows_filters_and_enabled(any_redis: aioredis.Redis) -> None:
    """Subscriptions route by exact type or '*', enabled or not (a disabled one's events are
    recorded as skipped); every change bumps the version."""
    store = SubscriptionStore(any_redis)
    failed = await store.create(SubscriptionCreate(url=URL, events=["rebalance.failed"]))
    every = await store.create(SubscriptionCreate(url=URL, events=["*"]))
    table = await store.routing_table()
    assert table.matching("rebalance.failed") == sorted([failed.id, every.id])
    assert table.matching("portfolio.paused") == [every.id]
    await store.update(every.id, SubscriptionPatch(enabled=False))
    later = await store.routing_table()
    assert later.version != table.version
    assert later.matching("portfolio.paused") == [every.id]
    await store.update(every.id, SubscriptionPatch(events=["rebalance.failed"]))
    await store.update(failed.id, SubscriptionPatch(events=["portfolio.paused"]))
    assert (await store.routing_table()).matching("portfolio.paused") == [failed.id]


async def test_pages_newest_first(any_redis: aioredis.Redis) -> None:
    """Listing pages newest first with a cursor."""
    store = SubscriptionStore(any_redis)
    ids = [(await store.create(SubscriptionCreate(url=URL, events=["*"]))).id for _ in range(3)]
    first, cursor = await store.page(cursor=None, limit=2)
    assert [s.id for s in first] == sorted(ids, reverse=True)[:2]  # ids sort by creation time
    rest, end = await store.page(cursor=cursor, limit=2)
    assert [s.id for s in rest] == [min(ids)]
    assert end is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "events": ["rebalance.exploded"]}, "events"),
        ({"events": ["*"]}, "url"),
        ({"url": URL, "events": ["*"], "colour": "red"}, "colour"),
        ({"url": URL, "events": ["*"], "maxInFlight": 0}, "maxInFlight"),
    ],
)
def test_invalid_bodies_name_the_field(body: dict[str, object], field: str) -> None:
    """Bad subscription bodies fail validation on the offending field."""
    with pytest.raises(ValidationError) as info:
        SubscriptionCreate.model_validate(body)
    assert info.value.errors()[0]["loc"][0] == field


def test_events_are_normalised() -> None:
    """Duplicates collapse; '*' absorbs everything else; an empty patch is refused."""
    body = SubscriptionCreate(url=URL, events=["rebalance.failed", "rebalance.failed"])
    assert body.events == ["rebalance.failed"]
    assert SubscriptionCreate(url=URL, events=["rebalance.failed", "*"]).events == ["*"]
    with pytest.raises(ValidationError):
        SubscriptionPatch.model_validate({})


async def _fan_out_once(
    redis: aioredis.Redis, version: str | None = None
) -> tuple[list[int] | None, str]:
    await ensure_group(redis, keys.EVENTS, keys.EVENTS_GROUP)
    sent = event(EventType.FAILED)
    await publish(redis, sent)
    reply: Any = await redis.xreadgroup(keys.EVENTS_GROUP, "t", {keys.EVENTS: ">"}, count=1)
    entry_id = text(reply[0][1][0][0])
    table = await SubscriptionStore(redis).routing_table()
    created = await fan_out(
        redis,
        group=keys.EVENTS_GROUP,
        version=version or table.version,
        batch=[(entry_id, plan(sent, table, OnCallRules()))],
        now_ms=int(time.time() * 1000),
    )
    return created, entry_id


async def test_fan_out_is_atomic_with_ack_and_happens_once(any_redis: aioredis.Redis) -> None:
    """Fan-out acknowledges the entry; a second run for the same entry creates nothing."""
    sub = await SubscriptionStore(any_redis).create(SubscriptionCreate(url=URL, events=["*"]))
    created, entry_id = await _fan_out_once(any_redis)
    assert created == [1]
    assert (await any_redis.xpending(keys.EVENTS, keys.EVENTS_GROUP))["pending"] == 0
    table = await SubscriptionStore(any_redis).routing_table()
    again = await fan_out(
        any_redis,
        group=keys.EVENTS_GROUP,
        version=table.version,
        batch=[(entry_id, [])],
        now_ms=0,
    )
    assert again == [0]
    [delivery], _ = await DeliveryStore(any_redis).page(subscription_id=sub.id)
    assert delivery.status is DeliveryStatus.PENDING


async def test_stale_routing_table_writes_nothing(any_redis: aioredis.Redis) -> None:
    """A fan-out planned on an old routing table is refused and leaves the entry pending."""
    await SubscriptionStore(any_redis).create(SubscriptionCreate(url=URL, events=["*"]))
    created, _ = await _fan_out_once(any_redis, version="0")
    assert created is None
    assert (await any_redis.xpending(keys.EVENTS, keys.EVENTS_GROUP))["pending"] == 1
    assert await any_redis.zcard(keys.DELIVERIES) == 0


async def test_batcher_replans_after_a_subscription_change(any_redis: aioredis.Redis) -> None:
    """A batch planned before a subscription appeared is re-planned to include it."""
    subs = SubscriptionStore(any_redis)
    await subs.create(SubscriptionCreate(url=URL, events=["*"]))
    batcher = FanOutBatcher(any_redis, subs, OnCallRules())
    await ensure_group(any_redis, keys.EVENTS, keys.EVENTS_GROUP)
    first, second = event(), event()
    await publish(any_redis, first, second)
    reply: Any = await any_redis.xreadgroup(keys.EVENTS_GROUP, "t", {keys.EVENTS: ">"}, count=2)
    [(id1, _), (id2, _)] = reply[0][1]
    assert await batcher.submit(text(id1), first) == 1
    await subs.create(SubscriptionCreate(url=URL, events=["rebalance.completed"]))
    assert await batcher.submit(text(id2), second) == 2


def test_delivery_ids_are_stable_per_event_and_subscription() -> None:
    """The same event and subscription always give the same id; another subscription does not."""
    sent = event()
    assert delivery_ulid(sent, "sub_a") == delivery_ulid(sent, "sub_a")
    assert delivery_ulid(sent, "sub_a") != delivery_ulid(sent, "sub_b")
    assert delivery_ulid(event(), "sub_a") != delivery_ulid(sent, "sub_a")


async def _seed(redis: aioredis.Redis, sid: str, status: str, *, at_ms: int, n: int) -> list[str]:
    """Write ``n`` delivery records straight into Redis, as the scripts lay them out."""
    ids = []
    for i in range(n):
        did = "dlv_" + ulid(at_ms + i)
        await redis.hset(
            keys.delivery(did),
            mapping={
                "id": did,
                "subscriptionId": sid,
                "eventId": "evt_1",
                "eventType": "rebalance.completed",
                "webhookId": "msg_1",
                "status": status,
                "createdAt": at_ms,
                "n": 0,
            },
        )
        for index in (
            keys.DELIVERIES,
            keys.deliveries_by_status(status),
            keys.subscription_deliveries(sid),
            keys.subscription_deliveries(sid, status),
        ):
            await redis.zadd(index, {did: 0})
        ids.append(did)
    return ids


async def test_retention_removes_old_final_deliveries_only(any_redis: aioredis.Redis) -> None:
    """Past 7 days succeeded, dead and skipped records go; a still-pending one stays."""
    now = int(time.time() * 1000)
    old = now - RETENTION_MS - 60_000
    gone = await _seed(any_redis, "sub_a", "succeeded", at_ms=old, n=2)
    gone += await _seed(any_redis, "sub_a", "dead", at_ms=old + 10, n=1)
    gone += await _seed(any_redis, "sub_a", "skipped", at_ms=old + 15, n=1)
    kept = await _seed(any_redis, "sub_a", "pending", at_ms=old + 20, n=1)
    fresh = await _seed(any_redis, "sub_a", "succeeded", at_ms=now, n=1)
    fresh += await _seed(any_redis, "sub_a", "skipped", at_ms=now + 1, n=1)
    store = DeliveryStore(any_redis)
    assert await store.sweep(now_ms=now) == 4
    assert await any_redis.zcard(keys.deliveries_by_status(DeliveryStatus.SKIPPED)) == 1
    remaining, _ = await store.page(limit=10)
    assert sorted(d.id for d in remaining) == sorted(kept + fresh)
    for did in gone:
        assert not await any_redis.exists(keys.delivery(did))
    assert await any_redis.zcard(keys.subscription_deliveries("sub_a", "succeeded")) == 1


async def test_per_subscription_cap_trims_oldest(any_redis: aioredis.Redis) -> None:
    """A subscription over its record cap loses its oldest final deliveries first."""
    now = int(time.time() * 1000)
    ids = await _seed(any_redis, "sub_b", "succeeded", at_ms=now - 1_000_000, n=8)
    store = DeliveryStore(any_redis)
    removed = await store.sweep(now_ms=now, subscription_ids=["sub_b"], per_subscription=5)
    assert removed == 3
    assert not await any_redis.exists(keys.delivery(ids[2]))
    assert await any_redis.exists(keys.delivery(ids[3]))


async def test_filters_pick_the_right_index(any_redis: aioredis.Redis) -> None:
    """Listing by subscription, by status, or both returns exactly those deliveries."""
    now = int(time.time() * 1000)
    a_dead = await _seed(any_redis, "sub_a", "dead", at_ms=now, n=2)
    await _seed(any_redis, "sub_a", "succeeded", at_ms=now + 5, n=1)
    b_dead = await _seed(any_redis, "sub_b", "dead", at_ms=now + 10, n=1)
    store = DeliveryStore(any_redis)
    both, _ = await store.page(subscription_id="sub_a", status=DeliveryStatus.DEAD)
    assert sorted(d.id for d in both) == sorted(a_dead)
    dead, _ = await store.page(status=DeliveryStatus.DEAD)
    assert len(dead) == 3
    assert dead[0].id == b_dead[0]  # newest first
    assert len((await store.page(subscription_id="sub_a"))[0]) == 3
    assert await store.replay("dlv_unknown") == "missing"
    assert await store.recover_since(datetime.now(UTC)) == 0
