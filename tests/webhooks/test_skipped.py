"""Events while a subscription is disabled become skipped deliveries, recoverable once enabled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from relay.store import keys
from relay.webhooks.deliveries import DeliveryStore, SubscriptionDisabled
from relay.webhooks.models import Delivery, DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionPatch, SubscriptionStore
from tests.fixtures.dispatch import delivery_in, dispatching, event, eventually, publish
from tests.fixtures.webhooks import Receiver


async def _status_is(store: DeliveryStore, did: str, status: DeliveryStatus) -> None:
    async def check() -> bool:
        current = await store.get(did)
        return current is not None and current.status is status

    await eventually(check)


async def _skipped(redis: aioredis.Redis, sid: str, count: int) -> list[Delivery]:
    """Wait until ``sid`` has ``count`` skipped deliveries; check none was queued."""
    store = DeliveryStore(redis)
    found: list[Delivery] = []

    async def check() -> bool:
        found[:] = (await store.page(subscription_id=sid, status=DeliveryStatus.SKIPPED))[0]
        return len(found) == count

    await eventually(check)
    assert await redis.zcard(keys.subscription_due(sid)) == 0
    assert all(d.attempts == [] for d in found)
    return found


async def test_disabled_subscription_records_skipped_and_recovers_once_enabled(
    real_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """A disabled subscription's event is skipped (not queued, not attempted); recovery is
    refused while disabled and queues it once enabled; it then arrives."""
    subs = SubscriptionStore(real_redis)
    store = DeliveryStore(real_redis)
    on = await subs.create(SubscriptionCreate(url=receiver.url("/on"), events=["*"]))
    off = await subs.create(SubscriptionCreate(url=receiver.url("/off"), events=["*"]))
    await subs.update(off.id, SubscriptionPatch(enabled=False))
    since = datetime.now(UTC) - timedelta(minutes=1)
    async with dispatching(real_redis):
        await publish(real_redis, event())
        await receiver.wait_for("/on")
        [skipped] = await _skipped(real_redis, off.id, 1)
        assert skipped.nextAttemptAt is None
        with pytest.raises(SubscriptionDisabled, match="is disabled; enable it first"):
            await store.recover_since(since, subscription_id=off.id)
        assert await store.recover_since(since) == 0  # the enabled one has nothing to recover
        assert await store.replay(skipped.id) == "subscription_disabled"
        await _status_is(store, skipped.id, DeliveryStatus.SKIPPED)
        await subs.update(off.id, SubscriptionPatch(enabled=True))
        assert await store.recover_since(since, subscription_id=off.id) == 1
        [request] = await receiver.wait_for("/off")
        await _status_is(store, skipped.id, DeliveryStatus.SUCCEEDED)
    assert request.headers["webhook-id"] == skipped.webhookId
    assert on.enabled


async def test_single_skipped_delivery_is_replayed_once_enabled(
    real_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """One skipped delivery is replayed by id once its subscription is enabled again."""
    subs = SubscriptionStore(real_redis)
    store = DeliveryStore(real_redis)
    off = await subs.create(SubscriptionCreate(url=receiver.url("/late"), events=["*"]))
    await subs.update(off.id, SubscriptionPatch(enabled=False))
    async with dispatching(real_redis):
        await publish(real_redis, event(), event())
        first, second = await _skipped(real_redis, off.id, 2)
        await subs.update(off.id, SubscriptionPatch(enabled=True))
        assert await store.replay(first.id) == "queued"
        [request] = await receiver.wait_for("/late")
        await _status_is(store, first.id, DeliveryStatus.SUCCEEDED)
        assert (await store.get(second.id)) is not None
        await _status_is(store, second.id, DeliveryStatus.SKIPPED)
    assert request.headers["webhook-id"] == first.webhookId
    [still] = await delivery_in(real_redis, DeliveryStatus.SKIPPED)
    assert still.id == second.id


async def test_a_subscription_disabled_by_an_earlier_version_is_routed_at_start(
    real_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """An earlier version took a disabled subscription out of the routing sets; a
    dispatcher's start routes it again, so its events are kept as skipped."""
    subs = SubscriptionStore(real_redis)
    off = await subs.create(SubscriptionCreate(url=receiver.url("/old"), events=["*"]))
    await subs.update(off.id, SubscriptionPatch(enabled=False))
    await real_redis.srem(keys.subscriptions_by_type("*"), off.id)  # the old layout
    assert (await subs.routing_table()).matching("rebalance.completed") == []
    async with dispatching(real_redis):
        await eventually(
            lambda: _routed(subs, off.id),
        )
        await publish(real_redis, event())
        await _skipped(real_redis, off.id, 1)
    assert await subs.route_disabled() == 1  # idempotent: routed already, saved the same


async def _routed(subs: SubscriptionStore, sid: str) -> bool:
    return (await subs.routing_table()).matching("rebalance.completed") == [sid]
