"""What the relay needs of its Redis, checked at start and while running.

- **Up**: :func:`wait_for_redis` retries ``PING`` with backoff (one log line per
  attempt, no traceback) so ``web`` and ``worker`` wait for a Redis that is not
  up yet instead of exiting.
- **Not evicting**: under any ``maxmemory-policy`` but ``noeviction`` Redis may
  silently drop a stream, a record or a subscription (``volatile-*`` too: the
  relay's request records and markers carry TTLs). :func:`eviction_policy` reads
  it with ``CONFIG GET``, or ``INFO memory`` where ``CONFIG`` is disabled (managed
  Redis); a process refuses to start on an evicting policy unless
  ``RELAY_ALLOW_EVICTING_REDIS`` accepts it.
- **Not full**: at ``maxmemory`` with ``noeviction`` every write fails with
  ``OOM``; :func:`accepts_writes` finds out with one tiny expiring write.

:class:`StoreMonitor` turns these into one :class:`StoreStatus` for readiness,
sets the gauges and logs each change once. :func:`restore_group` recreates a
consumer group Redis lost, and says so.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as aioredis
from redis.exceptions import (
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
)

from relay import metrics
from relay.core.backoff import backoff_delay
from relay.store import keys
from relay.store.connection import text
from relay.store.queue import ensure_group

log = logging.getLogger(__name__)

NOEVICTION = "noeviction"
PROBE_TTL_MS = 10_000
CHECK_TIMEOUT_S = 1.0


class StoreRefused(Exception):
    """Redis is configured so that the relay would lose data; ``str()`` says why and what to do."""


class StoreState(StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"
    FULL = "full"  # answers OOM to writes
    READ_ONLY = "read_only"  # answers READONLY to writes: a replica since a failover
    EVICTING = "evicting"  # maxmemory-policy drops keys


# What readiness says for each state (issue 10: name what happened).
STATE_TEXT = {
    StoreState.OK: "Redis answers and accepts writes",
    StoreState.UNREACHABLE: "the relay's store is unreachable",
    StoreState.FULL: "the relay's store is full (Redis answers OOM to writes)",
    StoreState.READ_ONLY: "the relay's store is read-only (Redis answers READONLY to writes:"
    " failing over)",
    StoreState.EVICTING: "the relay's store evicts keys (maxmemory-policy is not noeviction)",
}


def is_evicting(policy: str | None) -> bool:
    """True for every policy but ``noeviction``; an unknown policy (None) is not judged."""
    return policy is not None and policy != NOEVICTION


async def eviction_policy(redis: aioredis.Redis) -> str | None:
    """``maxmemory-policy``: from ``CONFIG GET``, else ``INFO memory``; None if neither answers."""
    try:
        reply = await redis.config_get("maxmemory-policy")
        value = reply.get("maxmemory-policy") if isinstance(reply, dict) else None
        if value:
            return text(value)
    except ResponseError:  # CONFIG disabled or renamed (managed Redis), or not implemented
        pass
    try:
        info = await redis.info("memory")
    except ResponseError:
        return None
    value = info.get("maxmemory_policy") if isinstance(info, dict) else None
    return text(value) if value else None


async def write_refusal(redis: aioredis.Redis) -> StoreState | None:
    """Why Redis refuses a write now (FULL on OOM, READ_ONLY on READONLY), or None when
    it takes one; other errors propagate."""
    try:
        await redis.set(keys.WRITE_PROBE, "1", px=PROBE_TTL_MS)
    except OutOfMemoryError:
        return StoreState.FULL
    except ReadOnlyError:
        return StoreState.READ_ONLY
    except ResponseError as exc:
        # Inside a script, or a client that does not map the error.
        if str(exc).startswith("OOM"):
            return StoreState.FULL
        if str(exc).startswith("READONLY"):
            return StoreState.READ_ONLY
        raise
    return None


async def wait_for_redis(
    redis: aioredis.Redis, stop: asyncio.Event, *, process: str, cap_s: float = 10.0
) -> bool:
    """Retry ``PING`` with capped backoff until it answers (True) or ``stop`` is set (False)."""
    attempt = 0
    while not stop.is_set():
        attempt += 1
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S * 2):
                await redis.ping()
            if attempt > 1:
                log.info("%s: Redis answers; starting", process, extra={"attempts": attempt})
            return True
        except (RedisError, OSError, TimeoutError) as exc:
            delay = backoff_delay(attempt, cap=cap_s, jitter=0.2)
            log.warning(
                "%s: Redis is not up yet (attempt %d: %s); retrying in %.1f s",
                process,
                attempt,
                type(exc).__name__,
                delay,
            )
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            continue
    return False


async def refuse_evicting(redis: aioredis.Redis, *, allow: bool, process: str) -> str | None:
    """Raise :class:`StoreRefused` on an evicting policy unless ``allow``; the policy read."""
    policy = await eviction_policy(redis)
    if policy is None:
        log.warning("%s: could not read maxmemory-policy (CONFIG and INFO refused)", process)
    elif is_evicting(policy) and not allow:
        raise StoreRefused(
            f"Redis maxmemory-policy is {policy}: it may silently drop queued commands, "
            "records and subscriptions; set it to noeviction, or "
            "RELAY_ALLOW_EVICTING_REDIS=true to run anyway"
        )
    elif is_evicting(policy):
        log.warning("%s: Redis maxmemory-policy is %s (accepted by setting)", process, policy)
    metrics.REDIS_EVICTING.set(1 if is_evicting(policy) else 0)
    return policy


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """One readiness reading of the store."""

    state: StoreState
    policy: str | None = None

    @property
    def ready(self) -> bool:
        return self.state is StoreState.OK

    def as_json(self) -> dict[str, str | None]:
        return {"redis": self.state.value, "detail": STATE_TEXT[self.state], "policy": self.policy}


class StoreMonitor:
    """Checks the store (reachable, not full, not evicting); logs and counts each change once.

    ``allow_evicting`` (``RELAY_ALLOW_EVICTING_REDIS``) keeps an evicting policy from
    making the process unready; the gauge still says so.
    """

    def __init__(self, redis: aioredis.Redis, *, allow_evicting: bool = False) -> None:
        self._redis = redis
        self._allow_evicting = allow_evicting
        self._last: StoreState = StoreState.OK
        self._policy: str | None = None

    async def check(self) -> StoreStatus:
        """Read the store's state now (bounded by :data:`CHECK_TIMEOUT_S` per step)."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self._redis.ping()
                refused = await write_refusal(self._redis)
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                self._policy = await eviction_policy(self._redis)
        except (RedisError, RedisClusterException, OSError, TimeoutError):
            return self._note(StoreStatus(StoreState.UNREACHABLE, self._policy))
        evicting = is_evicting(self._policy)
        metrics.REDIS_EVICTING.set(1 if evicting else 0)
        metrics.REDIS_FULL.set(1 if refused is StoreState.FULL else 0)
        if refused is not None:
            return self._note(StoreStatus(refused, self._policy))
        if evicting and not self._allow_evicting:
            return self._note(StoreStatus(StoreState.EVICTING, self._policy))
        return self._note(StoreStatus(StoreState.OK, self._policy))

    async def run(self, stop: asyncio.Event, *, every_s: float = 30.0) -> None:
        """Check every ``every_s`` until ``stop``, so a change is logged even if nobody probes."""
        while not stop.is_set():
            await self.check()
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            except TimeoutError:
                continue

    def _note(self, status: StoreStatus) -> StoreStatus:
        if status.state is not self._last:
            if status.state in (StoreState.FULL, StoreState.READ_ONLY, StoreState.EVICTING):
                detail = STATE_TEXT[status.state]
                log.error("not ready: %s", detail, extra={"policy": status.policy})
            elif status.state is StoreState.UNREACHABLE:  # once per outage, not per probe
                log.warning("not ready: %s", STATE_TEXT[status.state])
            elif status.state is StoreState.OK:
                log.info("ready again: %s", STATE_TEXT[status.state])
            self._last = status.state
        return status


async def restore_group(
    redis: aioredis.Redis, stream: str, group: str, *, recovering: bool
) -> bool:
    """Make sure ``group`` exists on ``stream``; True when it had to be created.

    With ``recovering`` (the group existed before, so Redis lost it), a creation is
    logged as an ERROR and counted: whatever the stream held may be gone.
    """
    created = await ensure_group(redis, stream, group)
    if created and recovering:
        metrics.STORE_RECOVERIES.labels(what=f"group {group} of {stream}").inc()
        log.error(
            "Redis lost consumer group %s of %s (restart without persistence, FLUSHALL or "
            "failover, or XGROUP DESTROY); recreated it (MKSTREAM, from id 0): commands, "
            "events or records written before may have been lost, and the entries the "
            "stream still holds are read again (what was already done is skipped)",
            group,
            stream,
            extra={"stream": stream, "group": group},
        )
    return created
