"""The webhook dispatcher runs unchanged on a three-master Redis Cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook

from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionPatch, SubscriptionStore
from tests.fixtures.dispatch import delivery_in, dispatching, event, eventually, publish
from tests.fixtures.webhooks import Receiver, sequence, status


async def test_fan_out_delivery_and_replay_on_cluster(
    cluster_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """Subscriptions, fan-out, leased delivery, dead letters and replay all work on a cluster."""
    subs = SubscriptionStore(cluster_redis)
    ok = await subs.create(SubscriptionCreate(url=receiver.url("/ok"), events=["*"]))
    flaky_url = receiver.on("/flaky", sequence(status(500), status(500), status(500), status(200)))
    flaky = await subs.create(SubscriptionCreate(url=flaky_url, events=["*"]))
    await subs.update(flaky.id, SubscriptionPatch(description="cluster"))
    async with dispatching(cluster_redis):
        await publish(cluster_redis, event())
        [request] = await receiver.wait_for("/ok")
        [dead] = await delivery_in(cluster_redis, DeliveryStatus.DEAD)
        store = DeliveryStore(cluster_redis)
        assert await store.replay(dead.id) == "queued"

        async def replayed() -> bool:
            current = await store.get(dead.id)
            return current is not None and current.status is DeliveryStatus.SUCCEEDED

        await eventually(replayed)
    assert ok.secret is not None
    Webhook(ok.secret).verify(request.body, request.headers)
    done = await store.get(dead.id)
    assert done is not None
    assert [a.statusCode for a in done.attempts] == [500, 500, 500, 200]


async def test_skipped_delivery_recovered_on_cluster(
    cluster_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """A disabled subscription's event is skipped, then recovered once enabled, on a cluster."""
    subs = SubscriptionStore(cluster_redis)
    sub = await subs.create(SubscriptionCreate(url=receiver.url("/later"), events=["*"]))
    await subs.update(sub.id, SubscriptionPatch(enabled=False))
    store = DeliveryStore(cluster_redis)
    since = datetime.now(UTC) - timedelta(minutes=1)
    async with dispatching(cluster_redis):
        await publish(cluster_redis, event())
        [skipped] = await delivery_in(cluster_redis, DeliveryStatus.SKIPPED)
        await subs.update(sub.id, SubscriptionPatch(enabled=True))
        assert await store.recover_since(since, subscription_id=sub.id) == 1
        [request] = await receiver.wait_for("/later")
    assert request.headers["webhook-id"] == skipped.webhookId
