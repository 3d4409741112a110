"""A subscriber that fails every call costs one log line per period, never a traceback."""

from __future__ import annotations

import logging

import pytest
import redis.asyncio as aioredis

from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests.fixtures.dispatch import dispatching, event, publish
from tests.fixtures.webhooks import Receiver, drop_connection, status

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
