"""store_health: the eviction policy (CONFIG or INFO), OOM, waiting for Redis, the monitor."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from relay.store.connection import connect
from relay.store.health import (
    StoreMonitor,
    StoreRefused,
    StoreState,
    eviction_policy,
    is_evicting,
    refuse_evicting,
    wait_for_redis,
    write_refusal,
)
from tests.fixtures.glider import free_port
from tests.fixtures.redis_config import PrivateRedis, set_config
from tests.fixtures.worker import eventually


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


def test_every_policy_but_noeviction_evicts() -> None:
    """volatile-* evicts too (records and markers carry TTLs); an unknown policy is not judged."""
    assert not is_evicting("noeviction")
    assert not is_evicting(None)
    for policy in ("allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl"):
        assert is_evicting(policy)


async def test_fakeredis_has_no_policy_and_starts_with_a_warning(
    fake_redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """fakeredis refuses CONFIG GET and INFO: the policy is unknown, start goes on, one warning."""
    caplog.set_level(logging.WARNING, logger="relay.store.health")
    assert await eviction_policy(fake_redis) is None
    assert await refuse_evicting(fake_redis, allow=False, process="worker") is None
    assert "could not read maxmemory-policy" in caplog.text
    status = await StoreMonitor(fake_redis).check()
    assert status.state is StoreState.OK


async def test_policy_from_config_get(private_redis: PrivateRedis) -> None:
    """CONFIG GET answers the policy; allkeys-lru is refused unless allowed."""
    server = await private_redis()
    async with aioredis.Redis.from_url(server.url) as client:
        assert await eviction_policy(client) == "noeviction"
        await set_config(server, "maxmemory-policy", "allkeys-lru")
        assert await eviction_policy(client) == "allkeys-lru"
        with pytest.raises(StoreRefused, match="RELAY_ALLOW_EVICTING_REDIS"):
            await refuse_evicting(client, allow=False, process="worker")
        assert await refuse_evicting(client, allow=True, process="worker") == "allkeys-lru"
        assert gauge("glider_relay_redis_evicting") == 1


async def test_policy_from_info_where_config_is_disabled(private_redis: PrivateRedis) -> None:
    """With CONFIG renamed away (as on managed Redis), INFO memory still tells the policy."""
    server = await private_redis(
        "--maxmemory-policy", "volatile-lru", "--rename-command", "CONFIG", ""
    )
    async with aioredis.Redis.from_url(server.url) as client:
        assert await eviction_policy(client) == "volatile-lru"
        with pytest.raises(StoreRefused, match="volatile-lru"):
            await refuse_evicting(client, allow=False, process="web")


async def test_oom_makes_the_store_full(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """At maxmemory with noeviction writes get OOM: the monitor says full, once, then ok again."""
    caplog.set_level(logging.INFO, logger="relay.store.health")
    server = await private_redis()
    async with aioredis.Redis.from_url(server.url) as client:
        monitor = StoreMonitor(client)
        assert (await monitor.check()).state is StoreState.OK
        await set_config(server, "maxmemory", "1")
        assert await write_refusal(client) is StoreState.FULL
        for _ in range(2):
            status = await monitor.check()
            assert (status.state, status.ready) == (StoreState.FULL, False)
        assert str(status.as_json()["detail"]).startswith("the relay's store is full")
        assert gauge("glider_relay_redis_full") == 1
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            "not ready: the relay's store is full (Redis answers OOM to writes)"
        ]
        await set_config(server, "maxmemory", "0")
        assert (await monitor.check()).state is StoreState.OK
        assert gauge("glider_relay_redis_full") == 0


async def test_a_replica_since_a_failover_is_read_only_not_unreachable(
    private_redis: PrivateRedis,
) -> None:
    """A demoted master answers PING and reads but READONLY to writes: the monitor says
    read-only (what the on-call must look at: the failover), then ok once writable."""
    server = await private_redis()
    async with aioredis.Redis.from_url(server.url) as client:
        monitor = StoreMonitor(client)
        await client.replicaof("127.0.0.1", free_port())
        try:
            status = await monitor.check()
            assert (status.state, status.ready) == (StoreState.READ_ONLY, False)
            assert "read-only" in str(status.as_json()["detail"])
        finally:
            await client.replicaof("NO", "ONE")
        assert (await monitor.check()).state is StoreState.OK


async def test_policy_changed_while_running(private_redis: PrivateRedis) -> None:
    """An evicting policy set while running makes the monitor unready and raises the gauge;
    the setting keeps it ready (the gauge still says so)."""
    server = await private_redis()
    async with aioredis.Redis.from_url(server.url) as client:
        strict, lenient = StoreMonitor(client), StoreMonitor(client, allow_evicting=True)
        assert (await strict.check()).ready
        await set_config(server, "maxmemory-policy", "allkeys-lru")
        status = await strict.check()
        assert (status.state, status.policy) == (StoreState.EVICTING, "allkeys-lru")
        assert gauge("glider_relay_redis_evicting") == 1
        assert (await lenient.check()).ready
        await set_config(server, "maxmemory-policy", "noeviction")
        assert (await strict.check()).ready
        assert gauge("glider_relay_redis_evicting") == 0


async def test_unreachable_store() -> None:
    """A Redis that does not answer is unreachable, not an exception."""
    down = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert (await StoreMonitor(down).check()).state is StoreState.UNREACHABLE
    finally:
        await down.aclose()


async def test_wait_for_redis_retries_until_it_is_up(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """Not up yet: one warning per attempt (no traceback), then True once it answers."""
    caplog.set_level(logging.INFO, logger="relay.store.health")
    server = await private_redis(start=False)
    client = connect(server.url)
    try:
        waiting = asyncio.create_task(wait_for_redis(client, asyncio.Event(), process="web"))
        await eventually(lambda: "attempt 2" in caplog.text, within=10)
        assert not waiting.done()
        await server.start()
        assert await asyncio.wait_for(waiting, timeout=15)
        warnings = [r for r in caplog.records if "not up yet" in r.getMessage()]
        assert len(warnings) >= 2
        assert all(r.exc_info is None for r in warnings)
        assert "Redis answers; starting" in caplog.text
    finally:
        await client.aclose()


async def test_wait_for_redis_ends_on_stop(private_redis: PrivateRedis) -> None:
    """A stop while waiting ends the wait with False."""
    server = await private_redis(start=False)
    client = connect(server.url)
    stop = asyncio.Event()
    try:
        waiting = asyncio.create_task(wait_for_redis(client, stop, process="worker"))
        stop.set()
        assert not await asyncio.wait_for(waiting, timeout=5)
    finally:
        await client.aclose()
