"""A subscriber that fails every call costs one log line per period, never a traceback."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from relay.webhooks.policy import FAILING_CAP
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests.fixtures.dispatch import dispatching, event, publish
from tests.fixtures.webhooks import Receiver, drop_connection, hang, sequence, status

EVENTS = 30


@pytest.mark.parametrize("answer", ["500", "reset"])
async def test_failing_attempts_log_one_line_and_no_traceback(
    any_redis: aioredis.Redis,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
    answer: str,
) -> None:
    behaviour = status(500, "boom") if answer == "500" else drop_connection()
    url = receiver.on("/failing", behaviour)
    await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    caplog.set_level(logging.DEBUG)
    async with dispatching(any_redis):
        await publish(any_redis, *(event() for _ in range(EVENTS)))
        await receiver.wait_for("/failing", EVENTS, within=20)
    ours = [r for r in caplog.records if r.name.startswith("relay")]  # not the test receiver's
    assert not [r for r in ours if r.exc_info], "a failed attempt logged a traceback"
    failing = [r for r in ours if "failing" in r.getMessage()]
    # The first failure is logged at once; the rest are counted into the next line, 10 s on.
    assert len(failing) == 1
    assert "attempts failed" in failing[0].getMessage()
    assert not [r for r in ours if "failed:" in r.getMessage()]


async def test_a_failing_subscription_gets_only_its_paced_share_in_flight(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """After a 500, a subscription with room for 10 gets at most FAILING_CAP attempts in
    flight (here they hang), while a healthy one beside it is served as usual."""
    release = asyncio.Event()
    failing = receiver.on("/failing", sequence(status(500), hang(release)))
    healthy = receiver.on("/healthy", status(200))
    store = SubscriptionStore(any_redis)
    await store.create(SubscriptionCreate(url=failing, events=["*"], maxInFlight=10))
    try:
        async with dispatching(any_redis, default_cap=10, stop_grace_s=0.1):
            await publish(any_redis, event())
            await receiver.wait_for("/failing", 2)  # the 500, then its retry (hanging)
            await store.create(SubscriptionCreate(url=healthy, events=["*"]))
            await publish(any_redis, *(event() for _ in range(10)))
            # The healthy subscriber got all ten, so the failing one had them due all along.
            await receiver.wait_for("/healthy", 10)
            await receiver.wait_for("/failing", 1 + FAILING_CAP)
            # Room for ten, but a failing subscription holds at most FAILING_CAP attempts.
            assert len(receiver.to("/failing")) == 1 + FAILING_CAP
    finally:
        release.set()
