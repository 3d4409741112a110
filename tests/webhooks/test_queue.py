"""Per-subscription queues: leases survive a dead worker, stops hand work back, SSRF at send."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook

from relay.store import keys
from relay.webhooks.claim_step import Report, step
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.secrets import MAX_PREVIOUS
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore, TooManySecrets
from tests.fixtures.dispatch import delivery_in, dispatching, event, eventually, publish
from tests.fixtures.webhooks import Receiver, StaticResolver, hang


async def _queued(redis: aioredis.Redis, sid: str) -> int:
    return int(await redis.zcard(keys.subscription_due(sid)))


async def test_dead_workers_lease_comes_due_again(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """A delivery claimed by a worker that died is sent by another once the lease ends."""
    sub = await SubscriptionStore(any_redis).create(
        SubscriptionCreate(url=receiver.url("/a"), events=["*"])
    )
    async with dispatching(any_redis, default_cap=0):  # fan-out only: nothing is sent
        await publish(any_redis, event())
        await eventually(lambda: _queued(any_redis, sub.id))
    now = int(time.time() * 1000)
    claim = await step(any_redis, sub.id, Report(), now_ms=now, want=1, default_cap=4, lease_ms=100)
    assert len(claim.claimed) == 1  # ... and this "worker" dies without a result
    async with dispatching(any_redis):
        [request] = await receiver.wait_for("/a")
        [done] = await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    assert request.headers["webhook-id"] == claim.claimed[0].webhook_id == done.webhookId


async def test_stop_hands_in_flight_delivery_back(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """A stop while a request hangs cancels it and puts the delivery straight back in the queue."""
    release = asyncio.Event()
    url = receiver.on("/slow", hang(release))
    sub = await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    try:
        async with dispatching(any_redis, stop_grace_s=0.1):
            await publish(any_redis, event())
            await receiver.wait_for("/slow")
    finally:
        release.set()
    assert await _queued(any_redis, sub.id) == 1
    assert await any_redis.zcard(keys.subscription_inflight(sub.id)) == 0
    [pending], _ = await DeliveryStore(any_redis).page(limit=5)
    assert pending.status is DeliveryStatus.PENDING
    assert pending.attempts == []  # an interrupted send is not an attempt


async def test_deleted_subscription_drains_as_dead(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """Queued deliveries of a deleted subscription turn dead, with the reason, unsent."""
    subs = SubscriptionStore(any_redis)
    sub = await subs.create(SubscriptionCreate(url=receiver.url("/x"), events=["*"]))
    async with dispatching(any_redis, default_cap=0):
        await publish(any_redis, event(), event())
        await eventually(lambda: _queued(any_redis, sub.id))
    assert await subs.delete(sub.id)
    async with dispatching(any_redis):
        dead = await delivery_in(any_redis, DeliveryStatus.DEAD)
        await eventually(lambda: _count_dead(any_redis, 2))
    assert receiver.to("/x") == []
    raw = await any_redis.hget(keys.delivery(dead[0].id), "reason")
    assert raw == b"subscription deleted"


async def _count_dead(redis: aioredis.Redis, expected: int) -> bool:
    found, _ = await DeliveryStore(redis).page(status=DeliveryStatus.DEAD, limit=10)
    return len(found) == expected


async def test_rotation_signs_with_both_secrets(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """Right after a rotation, a delivery verifies with the old secret and with the new one."""
    subs = SubscriptionStore(any_redis)
    sub = await subs.create(SubscriptionCreate(url=receiver.url("/r"), events=["*"]))
    rotated = await subs.rotate_secret(sub.id)
    assert rotated is not None
    assert rotated.secret != sub.secret
    async with dispatching(any_redis):
        await publish(any_redis, event())
        [request] = await receiver.wait_for("/r")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(sub.secret or "").verify(request.body, request.headers)
    Webhook(rotated.secret or "").verify(request.body, request.headers)


async def test_two_rotations_in_a_day_keep_the_original_signing(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """A receiver still on the original secret verifies after two rotations within a day."""
    subs = SubscriptionStore(any_redis)
    sub = await subs.create(SubscriptionCreate(url=receiver.url("/r"), events=["*"]))
    middle = await subs.rotate_secret(sub.id)
    newest = await subs.rotate_secret(sub.id)
    assert middle is not None
    assert newest is not None
    async with dispatching(any_redis):
        await publish(any_redis, event())
        [request] = await receiver.wait_for("/r")
    assert len(request.headers["webhook-signature"].split(" ")) == 3
    for secret in (sub.secret, middle.secret, newest.secret):
        Webhook(secret or "").verify(request.body, request.headers)


async def test_rotation_beyond_the_bound_is_refused_and_keeps_every_secret(
    any_redis: aioredis.Redis,
) -> None:
    """Past MAX_PREVIOUS secrets in grace, a rotation is refused and nothing changes."""
    subs = SubscriptionStore(any_redis)
    sub = await subs.create(SubscriptionCreate(url="https://hooks.partner.test/", events=["*"]))
    for _ in range(MAX_PREVIOUS):
        assert await subs.rotate_secret(sub.id) is not None
    before = await any_redis.hgetall(keys.subscription(sub.id))
    with pytest.raises(TooManySecrets):
        await subs.rotate_secret(sub.id)
    assert await any_redis.hgetall(keys.subscription(sub.id)) == before


@pytest.mark.parametrize("address", ["127.0.0.1", "::127.0.0.1", "::ffff:127.0.0.1"])
async def test_name_now_resolving_to_private_address_is_refused_at_send(
    any_redis: aioredis.Redis, receiver: Receiver, address: str
) -> None:
    """DNS rebinding: a saved name that now resolves to loopback (v4 or in v6) is refused."""
    port = receiver.base_url.rsplit(":", 1)[1]
    url = f"https://hooks.partner.test:{port}/x"
    sub = await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    resolver = StaticResolver({"hooks.partner.test": [address]})
    async with dispatching(any_redis, allow_private=False, resolver=resolver):
        await publish(any_redis, event())
        [dead] = await delivery_in(any_redis, DeliveryStatus.DEAD)
    assert dead.subscriptionId == sub.id
    assert {a.error for a in dead.attempts} == {
        "refused: hooks.partner.test resolves to a loopback address"
    }
    assert receiver.requests == []


@pytest.mark.parametrize(
    "url", ["https://169.254.169.254/latest", "https://[::169.254.169.254]/latest"]
)
async def test_private_literal_url_is_refused_at_send(
    any_redis: aioredis.Redis, receiver: Receiver, url: str
) -> None:
    """A stored URL on a private literal address (v4, or embedded in v6) is never used."""
    sub = await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    async with dispatching(any_redis, allow_private=False):
        await publish(any_redis, event())
        [dead] = await delivery_in(any_redis, DeliveryStatus.DEAD)
    assert dead.subscriptionId == sub.id
    assert dead.attempts[0].error == "refused: url points at a link-local address"


async def test_hanging_endpoint_times_out(any_redis: aioredis.Redis, receiver: Receiver) -> None:
    """An endpoint that never answers is a timed-out attempt, retried, then dead."""
    release = asyncio.Event()
    url = receiver.on("/silent", hang(release))
    await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    try:
        async with dispatching(any_redis, timeout_s=0.2):
            await publish(any_redis, event())
            [dead] = await delivery_in(any_redis, DeliveryStatus.DEAD)
    finally:
        release.set()
    assert [(a.statusCode, a.error) for a in dead.attempts] == [(None, "timed out")] * 3


async def test_malformed_stream_entry_is_dead_lettered(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """An events-stream entry that is not an event goes to the dead-letter stream; others flow."""
    await SubscriptionStore(any_redis).create(
        SubscriptionCreate(url=receiver.url("/a"), events=["*"])
    )
    async with dispatching(any_redis):
        await any_redis.xadd(keys.EVENTS, {"id": "evt_x", "type": "nope", "body": "{"})
        await publish(any_redis, event())
        await receiver.wait_for("/a")
        await eventually(lambda: any_redis.xlen(keys.EVENTS + ":dead"))
    entries: Any = await any_redis.xrange(keys.EVENTS + ":dead")
    [(_, fields)] = entries
    assert fields[b"id"] == b"evt_x"
    assert b"not an event" in fields[b"dead_reason"]
