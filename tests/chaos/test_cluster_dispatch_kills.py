"""Dispatcher workers SIGKILLed mid-fan-out on a three-master Redis Cluster: nothing lost,
nothing created or delivered twice.

Events are published while two ``glider-relay worker --only dispatcher`` processes fan
them out to many subscriptions and deliver them, and one of them is SIGKILLed every
1-2.5 s (tests/chaos/monkey.py). Every subscriber must get every event, repeats only
under the same webhook-id, and Redis must hold exactly one delivery per (event,
subscription), every one succeeded, with no stream entry left pending.
"""

from __future__ import annotations

import asyncio
import functools

import pytest
import redis.asyncio as aioredis

from relay.store import keys
from relay.webhooks.models import DeliveryStatus
from tests.chaos.checks import FAST_RECOVERY, subscribe
from tests.chaos.monkey import Monkey
from tests.chaos.sink import WebhookSink
from tests.fixtures.chaos import RelayProcesses
from tests.fixtures.dispatch import event, publish
from tests.fixtures.worker import eventually

pytestmark = pytest.mark.slow  # real processes; deselect with -m 'not slow'

SUBSCRIBERS = tuple(f"partner-{n}" for n in range(24))
EVENTS = 150
BURST = 10  # events per publish
WORKERS = 2
FLAGS = (*FAST_RECOVERY, "--only", "dispatcher")


def _reached(sink: WebhookSink, count: int) -> bool:
    """Whether some subscriber has received ``count`` events so far."""
    return max(len(sink.events(path)) for path in SUBSCRIBERS) >= count


async def test_sigkilled_dispatchers_on_cluster_lose_nothing_and_create_nothing_twice(
    redis_cluster_url: str,
    cluster_redis: aioredis.Redis,
    relay_procs: RelayProcesses,
    webhook_sink: WebhookSink,
) -> None:
    for path in SUBSCRIBERS:
        await subscribe(cluster_redis, webhook_sink.url(path))
    relay_procs.env = {"REDIS_URL": redis_cluster_url, "RELAY_ALLOW_PRIVATE_URLS": "true"}
    workers = {f"d{n}": await relay_procs.worker(f"d{n}", *FLAGS) for n in range(WORKERS)}
    monkey = Monkey(relay_procs, workers, flags=FLAGS)
    chaos = asyncio.create_task(monkey.run())
    published = [event() for _ in range(EVENTS)]
    try:
        for at in range(0, EVENTS, BURST):
            # The next burst goes out once the one before it is being delivered, so new
            # entries are fanned out all through the kills.
            await eventually(functools.partial(_reached, webhook_sink, at), within=60, step=0.05)
            await publish(cluster_redis, *published[at : at + BURST])

        def delivered() -> bool:
            return all(len(webhook_sink.events(path)) == EVENTS for path in SUBSCRIBERS)

        await eventually(delivered, within=120, step=0.2)
        # Let at least a few kills land before stopping, whatever the machine's speed.
        await eventually(lambda: monkey.kills >= 3, within=30, step=0.2)
    finally:
        monkey.stopping.set()
        await chaos
    expected = {(e.data.requestId, e.type.value) for e in published}
    for path in SUBSCRIBERS:
        received = webhook_sink.events(path)
        assert set(received) == expected, path
        assert all(len(webhook_ids) == 1 for webhook_ids in received.values()), path
    total = EVENTS * len(SUBSCRIBERS)

    async def all_recorded() -> bool:
        done = await cluster_redis.zcard(keys.deliveries_by_status(DeliveryStatus.SUCCEEDED))
        return int(done) == total

    await eventually(all_recorded, within=60, step=0.2)
    assert await cluster_redis.zcard(keys.DELIVERIES) == total  # one per (event, subscription)
    pending = await cluster_redis.xpending(keys.EVENTS, keys.EVENTS_GROUP)
    assert pending["pending"] == 0
    assert monkey.kills >= 3
    for worker in monkey.workers.values():
        # One the monkey started just now may still be importing (no signal handler yet).
        await eventually(functools.partial(worker.logged, "worker started"), within=30)
        assert worker.running
        assert await worker.terminate() == 0
