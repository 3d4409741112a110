"""Redis failing under a loop: which errors are waited out, told once per burst, counted."""

from __future__ import annotations

import logging

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    DataError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.store.faults import FAILING_AFTER, RedisFaults, is_transient, retry_transient
from tests.fixtures.redis import FailingCalls

TRANSIENT = [
    RedisConnectionError("Error while reading from 127.0.0.1:6379 : (104, 'reset')"),
    RedisTimeoutError("Timeout reading from 127.0.0.1:6379"),
    BusyLoadingError("Redis is loading the dataset in memory"),
    OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    ReadOnlyError("You can't write against a read only replica."),
    ClusterDownError("The cluster is down"),
    MasterDownError("Link with MASTER is down"),
    TryAgainError("Multiple keys request during rehashing of slot"),
    SlotNotCoveredError("slot 12 is not covered"),
    ResponseError("OOM command not allowed when used memory > 'maxmemory'. script: f"),
    ResponseError("READONLY You can't write against a read only replica. script: f"),
    ResponseError("BUSY Redis is busy running a script."),
]
NOT_TRANSIENT = [
    ResponseError("NOGROUP No such key '{gr}:commands' or consumer group 'executors'"),
    ResponseError("BUSYGROUP Consumer Group name already exists"),
    ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    DataError("Invalid input of type: 'NoneType'"),
    ValueError("a bug"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: f"{type(e).__name__}:{e}"[:40])
def test_redis_unable_to_serve_for_now_is_transient(exc: Exception) -> None:
    """Resets, timeouts, loading, OOM, read-only replicas and cluster trouble are waited out."""
    assert is_transient(exc)


@pytest.mark.parametrize("exc", NOT_TRANSIENT, ids=lambda e: f"{type(e).__name__}:{e}"[:40])
def test_bugs_and_missing_state_are_not_transient(exc: Exception) -> None:
    """A missing group, a wrong key type or a bug is not retried as if Redis were down."""
    assert not is_transient(exc)


def _count(loop: str, error: str) -> float:
    value = REGISTRY.get_sample_value(
        "glider_relay_redis_errors_total", {"loop": loop, "error": error}
    )
    return value or 0.0


def test_a_burst_is_logged_once_counted_each_time_and_reported_while_it_lasts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One WARNING when a burst starts, one INFO when it ends, every failure counted, the
    wait capped, and a problem for readiness from FAILING_AFTER failures on."""
    now = [100.0]
    faults = RedisFaults("test burst", cap_s=2.0, clock=lambda: now[0])
    before = _count("test burst", "ConnectionError")
    caplog.set_level(logging.INFO, logger="relay.store.faults")
    waits = []
    for _ in range(8):
        waits.append(faults.failed(RedisConnectionError("reset")))
        if faults.failures < FAILING_AFTER:
            assert faults.problem() is None
        now[0] += 1.0
    problem = faults.problem()
    assert problem is not None
    assert "8 tries" in problem
    assert "ConnectionError: reset" in problem
    assert all(0 < wait <= 2.0 for wait in waits)
    assert _count("test burst", "ConnectionError") == before + 8
    faults.ok()
    faults.ok()
    assert faults.problem() is None
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in messages] == ["WARNING", "INFO"]
    assert "test burst: Redis failed (ConnectionError: reset)" in messages[0][1]
    assert "after 8 failed tries in 8.0 s" in messages[1][1]
    assert not any(r.exc_info for r in caplog.records)
    faults.failed(RedisTimeoutError("slow"))
    assert len(caplog.records) == 3  # a new burst is told again
    assert faults.bursts == 2


async def test_retry_transient_waits_out_failures_and_raises_anything_else(
    fake_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that fails twice on a reset is run a third time and its result returned, with
    backoff between; a step failing on a wrong key type raises at once."""
    failing = FailingCalls(fake_redis, monkeypatch)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    faults = RedisFaults("test retry")
    await fake_redis.set("k", "v")
    failing.fail(2, "GET")
    assert await retry_transient(lambda: fake_redis.get("k"), faults, sleep=sleep) == b"v"
    assert failing.failed == 2
    assert len(slept) == 2
    assert faults.failures == 0
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await retry_transient(lambda: fake_redis.lpush("k", "x"), faults, sleep=sleep)
    assert len(slept) == 2
