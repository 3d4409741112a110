"""The dispatcher end to end: events stream in, signed webhooks reach local receivers."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from standardwebhooks.webhooks import Webhook

from relay.core.clock import to_ms
from relay.core.events import EventType
from relay.core.trace import parse
from relay.store import keys
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.models import DeliveryStatus
from relay.webhooks.subscriptions import SubscriptionCreate, SubscriptionStore
from tests.fixtures.dispatch import delivery_in, dispatching, event, eventually, publish
from tests.fixtures.webhooks import (
    Receiver,
    Streamed,
    drop_connection,
    hang,
    huge_body,
    sequence,
    status,
)


async def test_event_is_delivered_signed(any_redis: aioredis.Redis, receiver: Receiver) -> None:
    """A matching subscription gets the exact event body, verifiable with its secret."""
    subs = SubscriptionStore(any_redis)
    sub = await subs.create(SubscriptionCreate(url=receiver.url("/a"), events=["*"]))
    assert sub.secret is not None
    sent = event()
    async with dispatching(any_redis):
        await publish(any_redis, sent)
        [request] = await receiver.wait_for("/a")
        [done] = await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    assert request.body == sent.body()
    assert Webhook(sub.secret).verify(request.body, request.headers)["type"] == EventType.COMPLETED
    assert request.headers["webhook-id"] == done.webhookId
    assert done.subscriptionId == sub.id
    assert done.eventType == "rebalance.completed"
    assert [a.statusCode for a in done.attempts] == [200]
    stored = await DeliveryStore(any_redis).get(done.id)
    assert stored == done


async def test_each_attempt_carries_its_events_trace(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """The event's traceparent reaches every attempt, each a span of its own; an event
    without one still sends a valid traceparent (a trace of its own)."""
    traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    url = receiver.on("/t", sequence(status(500), status(200)))
    await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    async with dispatching(any_redis):
        fields = {**event().stream_fields(), "traceparent": traced}
        await any_redis.xadd(keys.EVENTS, fields)  # type: ignore[arg-type]
        first, retry = [
            parse(r.headers.get("traceparent")) for r in await receiver.wait_for("/t", 2)
        ]
        await publish(any_redis, event())
        untraced = parse((await receiver.wait_for("/t", 3))[2].headers.get("traceparent"))
    assert first is not None
    assert retry is not None
    assert untraced is not None
    assert first.trace_id == retry.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert len({first.span_id, retry.span_id, "00f067aa0ba902b7"}) == 3
    assert untraced.trace_id != first.trace_id


async def test_filters_pick_exact_types(any_redis: aioredis.Redis, receiver: Receiver) -> None:
    """A subscription for rebalance.failed gets failures only; '*' gets everything."""
    subs = SubscriptionStore(any_redis)
    await subs.create(SubscriptionCreate(url=receiver.url("/failed"), events=["rebalance.failed"]))
    await subs.create(SubscriptionCreate(url=receiver.url("/all"), events=["*"]))
    async with dispatching(any_redis):
        await publish(any_redis, event(EventType.COMPLETED), event(EventType.FAILED))
        everything = await receiver.wait_for("/all", 2)
        [failed] = await receiver.wait_for("/failed")
    assert failed.body in {r.body for r in everything}
    assert b"rebalance.failed" in failed.body
    assert len(receiver.to("/failed")) == 1


async def test_retries_keep_the_webhook_id(any_redis: aioredis.Redis, receiver: Receiver) -> None:
    """500, a dropped connection, then 200: three attempts, one webhook-id, all signed."""
    url = receiver.on("/flaky", sequence(status(500, "boom"), drop_connection(), status(200)))
    sub = await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    assert sub.secret is not None
    async with dispatching(any_redis):
        await publish(any_redis, event())
        requests = await receiver.wait_for("/flaky", 3)
        [done] = await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for request in requests:
        Webhook(sub.secret).verify(request.body, request.headers)
    codes = [a.statusCode for a in done.attempts]
    assert codes == [500, None, 200]
    assert done.attempts[0].responseBody == "boom"
    assert done.attempts[1].error is not None


async def test_last_failure_is_dead_then_replay_delivers(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """After every attempt fails the delivery is dead; a replay sends it again, same id."""
    url = receiver.on("/down", status(503))
    await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    store = DeliveryStore(any_redis)
    async with dispatching(any_redis):
        await publish(any_redis, event())
        [dead] = await delivery_in(any_redis, DeliveryStatus.DEAD)
        assert [a.statusCode for a in dead.attempts] == [503, 503, 503]
        receiver.on("/down", status(204))
        assert await store.replay(dead.id) == "queued"
        [done] = await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    requests = receiver.to("/down")
    assert len(requests) == 4
    assert {r.headers["webhook-id"] for r in requests} == {dead.webhookId}
    assert done.id == dead.id
    assert [a.statusCode for a in done.attempts] == [503, 503, 503, 204]


async def test_410_disables_subscription(any_redis: aioredis.Redis, receiver: Receiver) -> None:
    """410 Gone kills the delivery at once and disables the subscription: nothing more is sent."""
    url = receiver.on("/gone", status(410))
    subs = SubscriptionStore(any_redis)
    sub = await subs.create(SubscriptionCreate(url=url, events=["*"]))
    other = await subs.create(SubscriptionCreate(url=receiver.url("/ok"), events=["*"]))
    async with dispatching(any_redis):
        await publish(any_redis, event())
        [dead] = await delivery_in(any_redis, DeliveryStatus.DEAD)
        await publish(any_redis, event())
        await receiver.wait_for("/ok", 2)
    assert dead.subscriptionId == sub.id
    assert len(dead.attempts) == 1
    assert len(receiver.to("/gone")) == 1
    current = await subs.get(sub.id)
    assert current is not None
    assert not current.enabled
    assert current.disabledReason == "gone"
    assert (await subs.get(other.id)).enabled  # type: ignore[union-attr]


async def test_hanging_subscriber_never_delays_another(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """While a hanging endpoint holds all its slots, a healthy one receives every event."""
    release = asyncio.Event()
    subs = SubscriptionStore(any_redis)
    await subs.create(SubscriptionCreate(url=receiver.on("/hang", hang(release)), events=["*"]))
    await subs.create(SubscriptionCreate(url=receiver.url("/fast"), events=["*"]))
    events = [event() for _ in range(20)]
    try:
        async with dispatching(any_redis, default_cap=2):
            await publish(any_redis, *events)
            healthy = await receiver.wait_for("/fast", 20)
            hanging = receiver.to("/hang")
            release.set()
    finally:
        release.set()
    assert {r.body for r in healthy} == {e.body() for e in events}
    assert len(hanging) == 2  # its cap, still held: nothing else of its queue moved


async def test_redirect_is_not_followed(any_redis: aioredis.Redis, receiver: Receiver) -> None:
    """A 301 is a failed attempt; its Location is never requested."""
    url = receiver.on("/moved", status(301, headers={"Location": receiver.url("/elsewhere")}))
    await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    async with dispatching(any_redis):
        await publish(any_redis, event())
        [dead] = await delivery_in(any_redis, DeliveryStatus.DEAD)
    assert [a.statusCode for a in dead.attempts] == [301, 301, 301]
    assert dead.attempts[0].error == "redirects are not followed"
    assert receiver.to("/elsewhere") == []


async def test_huge_response_body_is_not_read(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """A 50 MB answer succeeds, keeps only 1 KiB on record, and is cut off mid-stream."""
    size = 50 * 1024 * 1024
    progress = Streamed()
    url = receiver.on("/big", huge_body(size, progress))
    await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    async with dispatching(any_redis):
        await publish(any_redis, event())
        [done] = await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    [attempt] = done.attempts
    assert attempt.statusCode == 200
    assert attempt.responseBody == "x" * 1024
    assert progress.written < size


async def test_recover_since_requeues_dead_deliveries(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """Every dead delivery since T goes out again once the endpoint is back."""
    url = receiver.on("/outage", status(500))
    await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    store = DeliveryStore(any_redis)
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with dispatching(any_redis):
        await publish(any_redis, event(), event(), event())
        await eventually(lambda: _count(store, DeliveryStatus.DEAD, 3))
        receiver.on("/outage", status(200))
        assert await store.recover_since(since) == 3
        await eventually(lambda: _count(store, DeliveryStatus.SUCCEEDED, 3))
    assert await store.recover_since(since) == 0


async def _count(store: DeliveryStore, status_: DeliveryStatus, expected: int) -> bool:
    found, _ = await store.page(status=status_, limit=500)
    return len(found) == expected


async def test_429_retry_after_holds_the_subscription(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """A 429 with Retry-After pauses the whole subscription until then, then resumes."""
    url = receiver.on("/limited", sequence(status(429, headers={"Retry-After": "1"}), status(200)))
    sub = await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    async with dispatching(any_redis, default_cap=1):
        await publish(any_redis, event())
        await receiver.wait_for("/limited")
        await publish(any_redis, event())
        await eventually(lambda: _count(DeliveryStore(any_redis), DeliveryStatus.SUCCEEDED, 2))
    held = int(await any_redis.hget(keys.subscription(sub.id), "throttledUntil") or 0)
    found, _ = await DeliveryStore(any_redis).page(limit=10)
    first, second = sorted(found, key=lambda d: len(d.attempts), reverse=True)
    assert [a.statusCode for a in first.attempts] == [429, 200]
    assert [a.statusCode for a in second.attempts] == [200]
    for delivery in (first, second):
        assert to_ms(delivery.attempts[-1].at) >= held  # nothing went out while held


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_attempts_and_disables_are_counted(
    any_redis: aioredis.Redis, receiver: Receiver
) -> None:
    """Each recorded attempt counts by outcome; an automatic disable counts by reason."""
    subs = SubscriptionStore(any_redis)
    await subs.create(SubscriptionCreate(url=receiver.url("/ok"), events=["*"]))
    await subs.create(SubscriptionCreate(url=receiver.on("/gone", status(410)), events=["*"]))
    before = (
        _sample("glider_relay_deliveries_total", result="succeeded"),
        _sample("glider_relay_deliveries_total", result="dead"),
        _sample("glider_relay_subscriptions_disabled_total", reason="gone"),
        _sample("glider_relay_delivery_seconds_count"),
    )
    async with dispatching(any_redis):
        await publish(any_redis, event())
        await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
        await delivery_in(any_redis, DeliveryStatus.DEAD)
    after = (
        _sample("glider_relay_deliveries_total", result="succeeded"),
        _sample("glider_relay_deliveries_total", result="dead"),
        _sample("glider_relay_subscriptions_disabled_total", reason="gone"),
        _sample("glider_relay_delivery_seconds_count"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1, 2]


async def test_a_delivery_that_ends_is_one_log_line(
    any_redis: aioredis.Redis, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Dead after its last attempt: one WARNING naming subscription, delivery and request;
    delivered after a replay: one INFO line; the failed attempts in between are not outcomes."""
    caplog.set_level(logging.INFO, logger="relay.webhooks.runner")
    url = receiver.on("/down", status(503))
    sub = await SubscriptionStore(any_redis).create(SubscriptionCreate(url=url, events=["*"]))
    sent = event()
    async with dispatching(any_redis):
        await publish(any_redis, sent)
        [dead] = await delivery_in(any_redis, DeliveryStatus.DEAD)
        receiver.on("/down", status(204))
        assert await DeliveryStore(any_redis).replay(dead.id) == "queued"
        await delivery_in(any_redis, DeliveryStatus.SUCCEEDED)
    ended = [r for r in caplog.records if r.getMessage() in ("webhook dead", "webhook delivered")]
    assert [(r.getMessage(), r.levelname) for r in ended] == [
        ("webhook dead", "WARNING"),
        ("webhook delivered", "INFO"),
    ]
    for record in ended:
        assert vars(record)["subscription_id"] == sub.id
        assert vars(record)["delivery_id"] == dead.id
        assert vars(record)["request_id"] == sent.data.requestId
        assert vars(record)["portfolio_id"] == sent.data.portfolioId
