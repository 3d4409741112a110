"""StreamConsumer: at-least-once, takeover of dead consumers' work, heartbeat, stop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from relay.store.connection import text, text_map
from relay.store.pending import PendingEntry
from relay.store.queue import ensure_group
from relay.store.streams import RetryLater, StreamConsumer, consumer_name
from tests.fixtures.worker import eventually, pending_rows, running, stream_entries

STREAM = "{gr}:test:stream"
GROUP = "testers"
DEAD = "{gr}:test:stream:dead"


def _consumer(
    redis: aioredis.Redis,
    handler: object,
    *,
    name: str = "c1",
    claim_idle_ms: int = 200,
    max_deliveries: int = 5,
    batch: int = 4,
) -> StreamConsumer:
    return StreamConsumer(
        redis,
        STREAM,
        GROUP,
        name,
        handler,  # type: ignore[arg-type]
        batch=batch,
        block_ms=50,
        claim_idle_ms=claim_idle_ms,
        max_deliveries=max_deliveries,
        dead_stream=DEAD,
    )


async def _pending(redis: aioredis.Redis) -> list[dict[str, Any]]:
    return await pending_rows(redis, STREAM, GROUP)


async def test_handler_acks_and_pending_list_empties(any_redis: aioredis.Redis) -> None:
    """Each new entry reaches the handler once with its fields; its ack empties the PEL."""
    seen: list[PendingEntry] = []

    async def handle(delivery: PendingEntry) -> None:
        seen.append(delivery)
        await any_redis.xack(delivery.stream, delivery.group, delivery.entry_id)

    consumer = _consumer(any_redis, handle)
    async with running(consumer):
        await any_redis.xadd(STREAM, {"n": "1"})
        await any_redis.xadd(STREAM, {"n": "2"})
        await eventually(lambda: len(seen) == 2)
    assert [d.fields for d in seen] == [{"n": "1"}, {"n": "2"}]
    assert all(not d.redelivered for d in seen)
    assert await _pending(any_redis) == []


async def test_failed_handler_entry_is_retried_once_idle(any_redis: aioredis.Redis) -> None:
    """An entry whose handler raised stays pending and comes back as a redelivery."""
    counts: list[int] = []

    async def handle(delivery: PendingEntry) -> None:
        counts.append(delivery.delivery_count)
        if len(counts) == 1:
            raise RuntimeError("transient")
        await any_redis.xack(delivery.stream, delivery.group, delivery.entry_id)

    async with running(_consumer(any_redis, handle)):
        await any_redis.xadd(STREAM, {"n": "1"})
        await eventually(lambda: len(counts) == 2)
    assert counts == [1, 2]
    assert await _pending(any_redis) == []


async def test_a_retry_later_is_retried_and_logged_without_a_traceback(
    any_redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """An expected "not now" (another holder renders it) is an INFO line, not an error."""
    counts: list[int] = []

    async def handle(delivery: PendingEntry) -> None:
        counts.append(delivery.delivery_count)
        if len(counts) == 1:
            raise RetryLater("held by another renderer")
        await any_redis.xack(delivery.stream, delivery.group, delivery.entry_id)

    with caplog.at_level(logging.INFO, logger="relay.store.streams"):
        async with running(_consumer(any_redis, handle)):
            await any_redis.xadd(STREAM, {"n": "1"})
            await eventually(lambda: len(counts) == 2)
    assert counts == [1, 2]
    [line] = [r for r in caplog.records if "left pending for a retry" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert line.exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_poison_entry_goes_to_dead_letters_with_reason(any_redis: aioredis.Redis) -> None:
    """An entry that fails every time is dead-lettered after max deliveries, with its error."""
    calls: list[int] = []

    async def handle(delivery: PendingEntry) -> None:
        calls.append(delivery.delivery_count)
        raise ValueError("cannot parse")

    async with running(_consumer(any_redis, handle, claim_idle_ms=50, max_deliveries=2)):
        entry_id = text(await any_redis.xadd(STREAM, {"n": "1"}))
        await eventually(lambda: any_redis.xlen(DEAD))
    [(_, dead)] = await stream_entries(any_redis, DEAD)
    assert calls == [1, 2]
    assert dead["n"] == "1"
    assert dead["dead_entry"] == entry_id
    assert dead["dead_stream"] == STREAM
    assert "delivered 3 times (max 2)" in dead["dead_reason"]
    assert "ValueError: cannot parse" in dead["dead_reason"]
    assert await _pending(any_redis) == []


async def test_dead_consumers_entries_are_taken_over(any_redis: aioredis.Redis) -> None:
    """Entries read by a consumer that then died are finished by a live one once idle."""
    await ensure_group(any_redis, STREAM, GROUP)
    await any_redis.xadd(STREAM, {"n": "1"})
    await any_redis.xreadgroup(GROUP, "dead-worker", {STREAM: ">"}, count=10)
    seen: list[PendingEntry] = []

    async def handle(delivery: PendingEntry) -> None:
        seen.append(delivery)
        await any_redis.xack(delivery.stream, delivery.group, delivery.entry_id)

    async with running(_consumer(any_redis, handle, name="alive")):
        await eventually(lambda: len(seen) == 1)
    assert seen[0].fields == {"n": "1"}
    assert seen[0].redelivered
    assert await _pending(any_redis) == []


async def test_heartbeat_keeps_long_work_from_being_stolen(any_redis: aioredis.Redis) -> None:
    """A live consumer's slow entry is not claimed by another over many claim sweeps."""
    release = asyncio.Event()
    slow_seen: list[PendingEntry] = []
    other_seen: list[PendingEntry] = []

    async def slow(delivery: PendingEntry) -> None:
        slow_seen.append(delivery)
        await release.wait()
        await any_redis.xack(delivery.stream, delivery.group, delivery.entry_id)

    async def other(delivery: PendingEntry) -> None:
        other_seen.append(delivery)

    worker = _consumer(any_redis, slow, name="slow", claim_idle_ms=150)
    thief = _consumer(any_redis, other, name="thief", claim_idle_ms=150)
    async with running(worker):
        await any_redis.xadd(STREAM, {"n": "1"})
        await eventually(lambda: len(slow_seen) == 1)
        async with running(thief):
            # Each sweep runs a quarter of claim_idle apart: 8 sweeps span two idle periods.
            await eventually(lambda: thief.claim_passes >= 8)
            assert other_seen == []
            release.set()
            await eventually(lambda: worker.in_flight == 0)
    assert await _pending(any_redis) == []


async def test_stop_finishes_quick_work_and_hands_back_slow_work(any_redis: aioredis.Redis) -> None:
    """stop(): finished handlers ack; unfinished ones are cancelled and claimable at once."""
    started: list[str] = []

    async def handle(delivery: PendingEntry) -> None:
        started.append(delivery.fields["kind"])
        if delivery.fields["kind"] == "slow":
            await asyncio.Event().wait()
        await any_redis.xack(delivery.stream, delivery.group, delivery.entry_id)

    consumer = _consumer(any_redis, handle, claim_idle_ms=60_000)
    task = asyncio.create_task(consumer.run())
    await any_redis.xadd(STREAM, {"kind": "quick"})
    await any_redis.xadd(STREAM, {"kind": "slow"})
    await eventually(lambda: len(started) == 2)
    consumer.stop(grace_s=0.2)
    await asyncio.wait_for(task, timeout=5)
    [row] = await _pending(any_redis)
    assert int(str(row["time_since_delivered"])) >= 60_000
    claimed: Any = await any_redis.xautoclaim(STREAM, GROUP, "next", 60_000, "0-0", count=10)
    assert [text_map(fields) for _, fields in claimed[1]] == [{"kind": "slow"}]


async def test_handler_can_dead_letter_directly(any_redis: aioredis.Redis) -> None:
    """dead_letter() moves an unusable entry aside with the handler's reason and acks it."""
    consumer: StreamConsumer

    async def handle(delivery: PendingEntry) -> None:
        await consumer.dead_letter(delivery, "not a command")

    consumer = _consumer(any_redis, handle)
    async with running(consumer):
        await any_redis.xadd(STREAM, {"junk": "x"})
        await eventually(lambda: any_redis.xlen(DEAD))
    [(_, fields)] = await stream_entries(any_redis, DEAD)
    assert fields["dead_reason"] == "not a command"
    assert fields["junk"] == "x"
    assert await _pending(any_redis) == []


async def test_batch_bounds_concurrent_handlers(any_redis: aioredis.Redis) -> None:
    """No more than ``batch`` handlers run at once; the rest wait on the stream."""
    release = asyncio.Event()
    running_now: list[str] = []
    peak = 0

    async def handle(delivery: PendingEntry) -> None:
        nonlocal peak
        running_now.append(delivery.entry_id)
        peak = max(peak, len(running_now))
        await release.wait()
        running_now.remove(delivery.entry_id)
        await any_redis.xack(delivery.stream, delivery.group, delivery.entry_id)

    consumer = _consumer(any_redis, handle, batch=2)
    async with running(consumer):
        for n in range(5):
            await any_redis.xadd(STREAM, {"n": str(n)})
        await eventually(lambda: len(running_now) == 2)
        release.set()
        await eventually(lambda: _no_pending(any_redis))
    assert peak == 2


async def _no_pending(redis: aioredis.Redis) -> bool:
    info = await redis.xinfo_groups(STREAM)
    return bool(info) and info[0]["pending"] == 0 and info[0]["lag"] == 0


def test_consumer_name_defaults_to_host_and_pid() -> None:
    """Without --name a consumer is hostname:pid; an explicit name wins."""
    assert consumer_name("w1") == "w1"
    host, pid = consumer_name().rsplit(":", 1)
    assert host
    assert pid.isdigit()


async def test_a_lost_group_is_recreated_and_reading_carries_on(
    any_redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """After the store lost everything (FLUSHDB), an entry written since is still handled:
    the group is recreated from 0, counted, and logged as an ERROR naming it."""
    seen: list[str] = []

    async def handler(delivery: PendingEntry) -> None:
        seen.append(delivery.fields["n"])
        await consumer.ack(delivery)

    consumer = StreamConsumer(any_redis, STREAM, GROUP, "c1", handler, block_ms=50)
    label = {"what": f"group {GROUP} of {STREAM}"}
    before = REGISTRY.get_sample_value("glider_relay_store_recoveries_total", label) or 0
    async with running(consumer):
        await any_redis.xadd(STREAM, {"n": "1"})
        await eventually(lambda: seen == ["1"])
        await any_redis.flushdb()
        await any_redis.xadd(STREAM, {"n": "2"})  # as the web does: a stream with no group
        await eventually(lambda: seen == ["1", "2"])
        assert consumer.progress.problem() is None
    after = REGISTRY.get_sample_value("glider_relay_store_recoveries_total", label)
    assert after == before + 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"lost consumer group {GROUP} of {STREAM}" in e and "lost" in e for e in errors)


async def test_the_group_hook_runs_again_after_a_loss(any_redis: aioredis.Redis) -> None:
    """``on_group`` (e.g. the dispatcher's on-call targets) runs at start and after a loss."""
    hooked = 0

    async def hook() -> None:
        nonlocal hooked
        hooked += 1

    async def handler(delivery: PendingEntry) -> None:
        await consumer.ack(delivery)

    consumer = StreamConsumer(any_redis, STREAM, GROUP, "c1", handler, block_ms=50, on_group=hook)
    async with running(consumer):
        await eventually(lambda: hooked == 1)
        await any_redis.flushdb()
        await eventually(lambda: hooked == 2)


async def test_a_reader_that_cannot_read_says_so(any_redis: aioredis.Redis) -> None:
    """A stream key of the wrong type fails every read: the progress names the problem,
    and once the key is fixed the reader reads again."""

    async def handler(delivery: PendingEntry) -> None:
        await consumer.ack(delivery)

    await any_redis.set(STREAM, "not a stream")
    consumer = StreamConsumer(any_redis, STREAM, GROUP, "c1", handler, block_ms=50)
    async with running(consumer):
        await eventually(lambda: consumer.progress.problem() is not None, within=15)
        assert "reads failed in a row" in (consumer.progress.problem() or "")
        await any_redis.delete(STREAM)
        await eventually(lambda: consumer.progress.problem() is None, within=15)
