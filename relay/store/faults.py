"""Redis failing under a long-running loop: waited out, told once, counted, seen by readiness.

A worker's loops (stream readers and their handlers, heartbeats, the poll schedule,
webhook steps, upkeep, the shared rate budget) meet Redis errors whenever the link
resets, a call times out, or Redis is loading, full, read-only after a failover or
its cluster is down. None of that is a bug, and none of it may end the loop (issue 11:
"nothing the outside world does goes silent"). Each loop keeps a :class:`RedisFaults`:

- one WARNING when a burst of failures starts (no traceback), one INFO when Redis
  answers again, however many tries came between;
- every failure counted in ``glider_relay_redis_errors_total{loop, error}``;
- the wait before the next try: capped exponential backoff (:mod:`relay.core.backoff`);
- :meth:`RedisFaults.problem` for the worker's ``/readyz`` while the burst lasts.

Steps that are safe to run twice (the guarded outcome steps, ``XACK``) are retried in
place with :func:`retry_transient`; a step whose first run may have landed is never
retried blindly elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay import metrics
from relay.core.backoff import backoff_delay
from relay.core.redact import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

# What a loop catches: anything the Redis client raises (a cluster's slot map being
# rebuilt is not a RedisError). Anything else is a bug and may end the loop.
REDIS_FAULTS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)

# A hand-back made while stopping (polls made due, stream entries made claimable) waits at
# most this for Redis: on a stalled one each call would wait out the socket timeout and hold
# the exit past its 10 s, while what was not handed back comes due by itself (leases, idle).
HAND_BACK_S = 2.0
HAND_BACK_FAULTS: tuple[type[Exception], ...] = (*REDIS_FAULTS, TimeoutError)

# Redis unable to serve for now: unreachable (ConnectionError, which includes
# BusyLoadingError and MaxConnectionsError), too slow, full, a replica since a
# failover, a cluster without a quorum or moving a slot.
_TRANSIENT: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OutOfMemoryError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
    RedisClusterException,
)
# The same, as an error reply's code, for errors raised from inside a Lua script
# or by a client that does not map them to a class.
_TRANSIENT_CODES = ("OOM", "READONLY", "LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "BUSY ")

FAILING_AFTER = 3  # failures in a row before readiness reports the loop
BASE_S = 0.2
CAP_S = 10.0


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis unable to serve for now (worth retrying the same call),
    as opposed to a bug, a missing group or a key of the wrong type."""
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, RedisError) and str(exc).lstrip("-").startswith(_TRANSIENT_CODES)


def describe(exc: BaseException, *, limit: int = 200) -> str:
    """``Type: message``, secrets redacted, then cut to ``limit`` (a log line, a readiness
    body, a dead letter's reason)."""
    return redact(f"{type(exc).__name__}: {exc}")[:limit]


Clock = Callable[[], float]


class RedisFaults:
    """One loop's bursts of Redis failures; ``name`` names the loop in logs, the metric
    and readiness. :meth:`failed` returns how long to wait before the next try."""

    def __init__(
        self,
        name: str,
        *,
        base_s: float = BASE_S,
        cap_s: float = CAP_S,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self._base_s = base_s
        self._cap_s = cap_s
        self._clock = clock
        self.failures = 0  # in a row
        self.bursts = 0
        self._since = 0.0
        self.last_error = ""

    def failed(self, exc: BaseException) -> float:
        """Note a failed call (logged only when a burst starts); the seconds to wait."""
        metrics.REDIS_ERRORS.labels(loop=self.name, error=type(exc).__name__).inc()
        self.failures += 1
        self.last_error = describe(exc)
        if self.failures == 1:
            self.bursts += 1
            self._since = self._clock()
            log.warning(
                "%s: Redis failed (%s); retrying with backoff until it answers",
                self.name,
                self.last_error,
                extra={"loop": self.name},
            )
        return backoff_delay(self.failures, base=self._base_s, cap=self._cap_s, jitter=0.5)

    def ok(self) -> None:
        """A call succeeded: a burst in progress is over (logged once)."""
        if self.failures:
            log.info(
                "%s: Redis answers again after %d failed tries in %.1f s",
                self.name,
                self.failures,
                self._clock() - self._since,
                extra={"loop": self.name},
            )
        self.failures = 0

    def problem(self) -> str | None:
        """Why this loop is not working now (for ``/readyz``), or None."""
        if self.failures < FAILING_AFTER:
            return None
        seconds = self._clock() - self._since
        return f"Redis failing for {seconds:.0f} s, {self.failures} tries ({self.last_error})"


Sleep = Callable[[float], Awaitable[None]]


async def retry_transient(
    step: Callable[[], Awaitable[T]], faults: RedisFaults, *, sleep: Sleep = asyncio.sleep
) -> T:
    """Run ``step`` until it succeeds, waiting out transient Redis errors (see
    :func:`is_transient`); any other error is raised at once.

    Only for steps that may run twice: a guarded outcome step whose first run landed
    just acknowledges again, and ``XACK`` is idempotent. Cancelling the caller (a
    worker's grace time running out) ends it.
    """
    while True:
        try:
            result = await step()
        except REDIS_FAULTS as exc:
            if not is_transient(exc):
                raise
            await sleep(faults.failed(exc))
            continue
        faults.ok()
        return result
