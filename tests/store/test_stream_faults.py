"""StreamConsumer while Redis fails under it: reads, handlers and acks ride it out."""

from __future__ import annotations

import logging

import pytest
import redis.asyncio as aioredis

from relay.store.pending import PendingEntry
from relay.store.streams import StreamConsumer
from tests.fixtures.redis import FailingCalls
from tests.fixtures.worker import eventually, pending_rows, running

STREAM = "{gr}:test:faults"
GROUP = "testers"


def _warnings(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and fragment in r.getMessage()
    ]


async def test_reads_ride_out_a_redis_that_fails_then_carry_on(
    any_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Every read fails for a while: the reader keeps going, says so to readiness, logs one
    WARNING for the whole burst (no traceback), and reads what was written once Redis answers."""
    failing = FailingCalls(any_redis, monkeypatch)
    seen: list[str] = []

    async def handler(delivery: PendingEntry) -> None:
        seen.append(delivery.fields["n"])
        await consumer.ack(delivery)

    consumer = StreamConsumer(any_redis, STREAM, GROUP, "c1", handler, block_ms=50)
    async with running(consumer):
        await eventually(lambda: consumer.progress.failures == 0 and consumer.claim_passes > 0)
        failing.fail(1000, "XREADGROUP", "EVALSHA", "XGROUP")
        await eventually(lambda: consumer.progress.problem() is not None, within=10)
        await any_redis.xadd(STREAM, {"n": "1"})  # written while the reader cannot read
        failing.fail(0)
        await eventually(lambda: seen == ["1"], within=15)
        await eventually(lambda: consumer.progress.problem() is None)
    assert len(_warnings(caplog, f"reading {STREAM}: Redis failed")) == 1
    assert not any(r.exc_info for r in caplog.records)


async def test_a_handler_redis_failed_under_runs_again_soon_and_acks_once(
    any_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler whose Redis call resets is run again after a short backoff (not a claim
    timeout later), without a traceback, and its entry is acknowledged once."""
    failing = FailingCalls(any_redis, monkeypatch)
    calls = 0

    async def handler(delivery: PendingEntry) -> None:
        nonlocal calls
        calls += 1
        await any_redis.incr("{gr}:test:done")
        await consumer.ack(delivery)

    consumer = StreamConsumer(
        any_redis, STREAM, GROUP, "c1", handler, block_ms=50, claim_idle_ms=60_000
    )
    async with running(consumer):
        failing.fail(2, "INCRBY", "INCR")
        await any_redis.xadd(STREAM, {"n": "1"})
        await eventually(lambda: calls == 3, within=5)
        await eventually(lambda: consumer.in_flight == 0)
        assert await pending_rows(any_redis, STREAM, GROUP) == []
        assert consumer.handling.problem() is None
    assert await any_redis.get("{gr}:test:done") == b"1"
    assert not any("handler failed" in r.getMessage() for r in caplog.records)
    assert len(_warnings(caplog, f"handling {STREAM}: Redis failed")) == 1


async def test_an_ack_whose_reply_was_lost_does_not_redo_the_work(
    any_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The XACK lands but its reply is lost to a reset: the ack is retried in place (it is
    idempotent), so the work it stood for (a Slack reply, say) is done once."""
    failing = FailingCalls(any_redis, monkeypatch)
    done: list[str] = []

    async def handler(delivery: PendingEntry) -> None:
        done.append(delivery.entry_id)
        await consumer.ack(delivery)

    consumer = StreamConsumer(any_redis, STREAM, GROUP, "c1", handler, block_ms=50)
    async with running(consumer):
        failing.fail(1, "XACK", lands=True)
        await any_redis.xadd(STREAM, {"n": "1"})
        await eventually(lambda: failing.failed == 1 and consumer.in_flight == 0 and done)
        assert await pending_rows(any_redis, STREAM, GROUP) == []
    assert len(done) == 1
