"""Batched queue steps: what a step saw ahead lets the next one claim without a read, a
stale view costs a step and never work, and each recorded attempt is charted once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from relay.core.clock import epoch_ms
from relay.store import keys
from relay.store.connection import text_map
from relay.webhooks import claim_step
from relay.webhooks.claim_step import Finished, Report, StepBatcher, step
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests.fixtures.dispatch import dispatching, event, eventually, publish

URL = "http://127.0.0.1:9/hook"


async def _queued_subscription(redis: aioredis.Redis, count: int, cap: int) -> str:
    """A subscription (cap ``cap``) with ``count`` deliveries due and none sent."""
    sub = await SubscriptionStore(redis).create(
        SubscriptionCreate(url=URL, events=["*"], maxInFlight=cap)
    )
    async with dispatching(redis, default_cap=0):  # fan-out only: nothing is claimed
        await publish(redis, *(event() for _ in range(count)))

        async def queued() -> bool:
            return int(await redis.zcard(keys.subscription_due(sub.id))) == count

        await eventually(queued)
    return sub.id


def _count_pipelines(redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one per pipeline made on ``redis`` (the queue reads use one)."""
    made: list[int] = []
    real = redis.pipeline

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(redis, "pipeline", counted)
    return made


async def test_next_step_claims_what_was_ahead_without_reading_the_queue(
    any_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's reply names the head of the queue; the next step claims from it in
    order, with no read of the queue before the script."""
    sid = await _queued_subscription(any_redis, 4, cap=4)
    batcher = StepBatcher(any_redis, default_cap=4)
    first = await batcher.step(sid, Report(), now_ms=epoch_ms(), want=1)
    assert len(first.claimed) == 1
    assert len(first.ahead) == 3
    pipelines = _count_pipelines(any_redis, monkeypatch)
    second = await batcher.step(sid, Report(), now_ms=epoch_ms(), want=2)
    assert [c.delivery_id for c in second.claimed] == first.ahead[:2]
    assert pipelines == []


async def test_a_stale_view_of_the_queue_costs_a_step_not_work(
    any_redis: aioredis.Redis,
) -> None:
    """Deliveries another worker claimed since are not taken twice; the subscription
    stays ready now and the following step claims what is really next."""
    sid = await _queued_subscription(any_redis, 6, cap=4)
    batcher = StepBatcher(any_redis, default_cap=4)
    first = await batcher.step(sid, Report(), now_ms=epoch_ms(), want=1)
    other = await step(any_redis, sid, Report(), now_ms=epoch_ms(), want=2, default_cap=4)
    assert [c.delivery_id for c in other.claimed] == first.ahead[:2]
    now = epoch_ms()
    stale = await batcher.step(sid, Report(), now_ms=now, want=1)
    assert stale.claimed == []
    ready = await any_redis.zscore(keys.SUBSCRIPTIONS_READY, sid)
    assert ready is not None
    assert ready <= now
    fresh = await batcher.step(sid, Report(), now_ms=epoch_ms(), want=1)
    assert [c.delivery_id for c in fresh.claimed] == stale.ahead[:1]
    taken = {c.delivery_id for r in (first, other, fresh) for c in r.claimed}
    assert len(taken) == 4


async def test_each_recorded_attempt_is_charted_once(any_redis: aioredis.Redis) -> None:
    """The console's minute counts grow with the attempts a step recorded, and a result
    sent again (its record already written) adds nothing."""
    sid = await _queued_subscription(any_redis, 2, cap=4)
    batcher = StepBatcher(any_redis, default_cap=4)
    claimed = (await batcher.step(sid, Report(), now_ms=epoch_ms(), want=2)).claimed
    now = epoch_ms()
    done = [
        Finished(claimed[0].delivery_id, DeliveryStatus.SUCCEEDED.value, None, "{}"),
        Finished(claimed[1].delivery_id, DeliveryStatus.FAILED.value, now + 60_000, "{}"),
    ]
    await batcher.step(sid, Report(finished=done), now_ms=now, want=0)
    await batcher.step(sid, Report(finished=done[:1]), now_ms=epoch_ms(), want=0)
    counts: dict[str, int] = {}
    current = epoch_ms() // 60_000
    for minute in (current - 1, current):  # the steps may straddle a minute's end
        for outcome, n in text_map(await any_redis.hgetall(keys.delivery_minute(minute))).items():
            counts[outcome] = counts.get(outcome, 0) + int(n)
    assert counts == {"succeeded": 1, "failed": 1}
    assert await any_redis.ttl(keys.delivery_minute(current)) > 0


async def test_failing_subscriptions_step_in_a_lane_of_their_own(
    any_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscription whose last attempt failed never shares a step call with a healthy one
    (its bookkeeping cannot delay theirs); its first success puts it back in one lane."""
    calls: list[set[str]] = []
    real = claim_step._run

    async def watched(redis: aioredis.Redis, batch: Any, *args: Any) -> Any:
        calls.append({sid for sid, _, _ in batch})
        return await real(redis, batch, *args)

    monkeypatch.setattr(claim_step, "_run", watched)
    healthy = await _queued_subscription(any_redis, 1, 4)
    failing = await _queued_subscription(any_redis, 1, 4)
    batcher = StepBatcher(any_redis, default_cap=4)
    now = epoch_ms()

    async def both() -> None:
        # More steps than calls in flight: whatever waits goes out together (one lane).
        await asyncio.gather(
            *(batcher.step(sid, Report(), now_ms=now, want=0) for sid in [healthy, failing] * 4)
        )

    await batcher.step(failing, Report(health="fail"), now_ms=now, want=0)
    calls.clear()
    await both()
    assert all(not {healthy, failing} <= sids for sids in calls), calls
    await batcher.step(failing, Report(health="ok"), now_ms=now, want=0)
    calls.clear()
    await both()
    assert any({healthy, failing} <= sids for sids in calls), calls


async def test_a_deleted_failing_subscription_is_forgotten(any_redis: aioredis.Redis) -> None:
    """The failing lane holds no subscription once it is gone (it would grow for good)."""
    sid = await _queued_subscription(any_redis, 1, 4)
    batcher = StepBatcher(any_redis, default_cap=4)
    await batcher.step(sid, Report(health="fail"), now_ms=epoch_ms(), want=0)
    assert batcher.failing == {sid}
    assert await SubscriptionStore(any_redis).delete(sid)
    await batcher.step(sid, Report(health="fail"), now_ms=epoch_ms(), want=0)
    assert batcher.failing == frozenset()
