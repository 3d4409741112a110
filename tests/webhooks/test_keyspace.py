"""The webhook scripts' key layout: built from keys.py, and what a script does with a key
it was not given (leaves the work for the next call; never builds the key itself)."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from relay.core.clock import epoch_ms
from relay.store import keys
from relay.store.connection import text
from relay.store.delivery_stats import KEEP_S
from relay.store.queue import ensure_group
from relay.webhooks.claim_step import _STEPS, Report, _request
from relay.webhooks.deliveries import _REQUEUE
from relay.webhooks.fanout import fan_out
from relay.webhooks.keyspace import (
    ROUTABLE_TYPES,
    STATUSES,
    Keyspace,
    NewDelivery,
    subscription_keys,
)
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests.fixtures.dispatch import event

URL = "https://hooks.partner.example/glider"


def test_layout_is_the_shared_indexes_then_a_block_per_subscription() -> None:
    """Shared indexes, one fixed block per subscription, then deliveries, then per marker
    its open marker and its alert."""
    space = Keyspace(first=2)
    space.add_new([NewDelivery("dlv_1", "sub_a", "evt_1", "t", "msg_1", "{}", "m", "open")])
    space.add_subscriptions(["sub_b", "sub_a"])
    shared = 4 + len(STATUSES) + len(ROUTABLE_TYPES)
    built = space.keys()
    assert built[:4] == [
        keys.SUBSCRIPTIONS,
        keys.SUBSCRIPTIONS_VERSION,
        keys.SUBSCRIPTIONS_READY,
        keys.DELIVERIES,
    ]
    block = 4 + len(STATUSES)
    assert built[shared : shared + block] == subscription_keys("sub_a")
    assert built[shared + block : shared + 2 * block] == subscription_keys("sub_b")
    assert built[shared + 2 * block :] == [
        keys.delivery("dlv_1"),
        keys.oncall_open("m"),
        keys.oncall_alert("m"),
    ]
    spec = json.loads(space.spec())
    assert (spec["first"], spec["subs"], spec["dlvs"], spec["open"]) == (
        2,
        ["sub_a", "sub_b"],
        ["dlv_1"],
        ["m"],
    )


async def _one_delivery(redis: aioredis.Redis) -> tuple[str, str]:
    sub = await SubscriptionStore(redis).create(SubscriptionCreate(url=URL, events=["*"]))
    sent = event()
    row = NewDelivery("dlv_x", sub.id, sent.id, sent.type.value, "msg_x", "{}")
    await ensure_group(redis, keys.EVENTS, keys.EVENTS_GROUP)
    entry = await redis.xadd(keys.EVENTS, sent.stream_fields())  # type: ignore[arg-type]
    await redis.xreadgroup(keys.EVENTS_GROUP, "t", {keys.EVENTS: ">"})
    table = await SubscriptionStore(redis).routing_table()
    created = await fan_out(
        redis,
        group=keys.EVENTS_GROUP,
        version=table.version,
        batch=[(text(entry), [row])],
        now_ms=epoch_ms(),
    )
    assert created == [1]
    return sub.id, "dlv_x"


async def test_a_step_leaves_a_delivery_it_was_not_given_queued(any_redis: aioredis.Redis) -> None:
    """A due delivery missing from the layout is not claimed, stays due, and the
    subscription stays ready now, so the next step (which declares it) takes it; the
    reply names it as ahead in the queue."""
    sid, did = await _one_delivery(any_redis)
    now = epoch_ms()
    space = Keyspace(first=2)  # after the results hash
    space.add_subscriptions([sid])  # the delivery itself left out
    request = _request(sid, Report(), now_ms=now, want=1, cap=4, lease_ms=60_000)
    [[_target, claimed, ahead]] = await _STEPS(
        any_redis,
        [keys.delivery_minute(now // 60_000), *space.keys()],
        [space.spec(), json.dumps([request]), KEEP_S],
    )
    assert claimed == []
    assert [text(d) for d in ahead] == [did]
    assert await any_redis.zscore(keys.subscription_due(sid), did) is not None
    ready = await any_redis.zscore(keys.SUBSCRIPTIONS_READY, sid)
    assert ready is not None
    assert ready <= now


async def test_a_requeue_whose_owner_was_not_given_changes_nothing(
    any_redis: aioredis.Redis,
) -> None:
    """A replay whose subscription is missing from the layout answers "changed", untouched."""
    _, did = await _one_delivery(any_redis)
    await any_redis.hset(keys.delivery(did), "status", DeliveryStatus.DEAD.value)
    space = Keyspace(first=2)  # after the audit log
    space.add_deliveries([did])  # its subscription left out
    [word] = await _REQUEUE(
        any_redis, [keys.AUDIT, *space.keys()], [space.spec(), str(epoch_ms()), "0", did, ""]
    )
    assert word in ("changed", b"changed")
    assert await any_redis.hget(keys.delivery(did), "status") in ("dead", b"dead")
    assert await any_redis.zcard(keys.SUBSCRIPTIONS_READY) == 1  # from the fan-out; no wake
