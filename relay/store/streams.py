"""Crash-safe reading of a Redis Stream through a consumer group.

What it guarantees, whatever instruction a worker dies at:

- An entry leaves the group's pending list only when its handler acknowledges it,
  and the handler does that in the same atomic step (Lua or MULTI) that records
  the entry's outcome. A crash before that step leaves the entry pending.
- Entries pending on a consumer that stopped heartbeating for ``claim_idle_ms``
  (it was SIGKILLed, or its host vanished) are taken over with ``XAUTOCLAIM`` by
  any live consumer, so they finish within about a minute, not hours.
- A live consumer refreshes the idle time of every entry it is still working on
  (``XCLAIM ... JUSTID`` to itself, only while it still owns it), so long work is
  never stolen from it.
- An entry delivered more than ``max_deliveries`` times is moved to a dead-letter
  stream with its reason, atomically with its acknowledgement.
- A group Redis lost (restart without persistence, ``FLUSHALL``, failover to a
  replica that is behind) is recreated from id ``0`` as soon as a read fails, so
  reading carries on within seconds; :func:`relay.store.health.restore_group` logs
  it as an ERROR and counts it (``glider_relay_store_recoveries_total``).
- Redis failing (a reset link, a timeout, loading, full, read-only after a failover)
  ends nothing: reads, heartbeats and handlers wait it out with backoff, logged once
  per burst and counted (:mod:`relay.store.faults`); a handler Redis failed under runs
  again (a redelivery, only sooner), and acknowledgements are retried in place.
- Nothing here trims a stream by length; :func:`relay.store.pending.trim_acknowledged` removes only
  entries that every group has acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from relay.store import pending
from relay.store.connection import text
from relay.store.dead_letters import request_of
from relay.store.faults import (
    HAND_BACK_FAULTS,
    HAND_BACK_S,
    REDIS_FAULTS,
    RedisFaults,
    describe,
    is_transient,
    retry_transient,
)
from relay.store.health import restore_group
from relay.store.pending import DeadEntry, PendingEntry, entry_fields
from relay.worker.health import ReadProgress

log = logging.getLogger(__name__)
__all__ = ["DeadEntry", "DeadHook", "Handler", "PendingEntry", "StreamConsumer", "consumer_name"]


def consumer_name(name: str | None = None) -> str:
    """A stable consumer name: ``name`` when given, else ``hostname:pid``."""
    return name or f"{socket.gethostname()}:{os.getpid()}"


Handler = Callable[[PendingEntry], Awaitable[None]]
GroupHook = Callable[[], Awaitable[None]]
DeadHook = Callable[[DeadEntry], Awaitable[None]]


class RetryLater(Exception):
    """A handler that cannot finish an entry now, as expected (another holder renders it,
    a lock ran out): the entry stays pending for a redelivery, logged without a traceback."""


class StreamConsumer:
    """Reads ``stream`` as ``consumer`` of ``group`` and runs ``handler`` on each entry.

    At most ``batch`` handlers run at once. :meth:`run` returns after
    :meth:`stop`: reading stops, in-flight handlers get ``grace_s`` to finish,
    and whatever is still unfinished is handed back (made immediately claimable)
    rather than lost. A handler that raises leaves its entry pending: it is
    retried once idle, and dead-lettered after ``max_deliveries``.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        batch: int = 16,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
        heartbeat_ms: int | None = None,
        max_deliveries: int = 5,
        dead_stream: str | None = None,
        on_group: GroupHook | None = None,
        on_dead: DeadHook | None = None,
    ) -> None:
        if batch < 1 or claim_idle_ms < 1 or max_deliveries < 1:
            raise ValueError("batch, claim_idle_ms and max_deliveries must be positive")
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.dead_stream = dead_stream or f"{stream}:dead"
        self._handler = handler
        self._batch = batch
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._heartbeat_s = (heartbeat_ms or max(1, claim_idle_ms // 3)) / 1000
        self._claim_every_s = min(claim_idle_ms / 4000, 10.0)  # taken over by ~idle + 10 s
        self._max_deliveries = max_deliveries
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._errors: dict[str, str] = {}  # last handler error per entry, for its dead reason
        self._cursor = "0-0"
        self._last_claim = float("-inf")
        self._stopping = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._grace_s = 5.0
        self.claim_passes = 0  # completed sweeps over the whole pending list
        self.progress = ReadProgress(f"{stream} ({group})")
        self.faults = RedisFaults(f"reading {stream}")
        self.heartbeats = RedisFaults(f"heartbeat of {stream}")
        self.handling = RedisFaults(f"handling {stream}")  # handlers and their acks
        self._group_ok = False
        self._retried = False  # the last read failed on a missing group, retried at once
        self._on_group = on_group  # re-creates what goes with the group (after a loss too)
        self._group_seen = False  # the group existed once: a missing one now is a loss
        self._on_dead = on_dead  # notes a dead letter where people look (e.g. the request)

    @property
    def watched(self) -> tuple[ReadProgress | RedisFaults, ...]:
        """What a worker's readiness checks: the reads, and Redis under heartbeats and handlers."""
        return (self.progress, self.heartbeats, self.handling)

    @property
    def in_flight(self) -> int:
        """Entries whose handler is running now."""
        return len(self._in_flight)

    def stop(self, grace_s: float = 5.0) -> None:
        """Ask :meth:`run` to stop reading and wind down within about ``grace_s``."""
        self._grace_s = grace_s
        self._stopping.set()
        self._slot_free.set()

    async def run(self) -> None:
        """Consume until :meth:`stop`; then drain or hand back what is in flight.

        A Redis that is down (at start too) or failing is retried with backoff, logged
        once per burst (:class:`relay.store.faults.RedisFaults`); a group it lost is
        recreated at once.
        """
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        try:
            while await self._wait_for_slot():
                for delivery in await self._read():
                    self._start(delivery)
        finally:
            heartbeat.cancel()
            await self._drain()

    async def _read(self) -> list[PendingEntry]:
        """One read, the group made sure of first; nothing after a failure (waited out)."""
        try:
            if not self._group_ok:
                await self._ensure_group()
                self._group_ok = True
            deliveries = await self._next_deliveries(self._batch - self.in_flight)
        except REDIS_FAULTS as exc:
            await self._read_failed(exc)
            return []
        self._retried = False
        self.progress.ok()
        self.faults.ok()
        return deliveries

    async def _read_failed(self, exc: Exception) -> None:
        if isinstance(exc, ResponseError) and not is_transient(exc):
            # NOGROUP, or a blocked read whose key vanished: is the group gone? Read
            # again at once if it is back (here, or by another worker), else back off.
            self._group_ok = self._retried = await self._recreated() and not self._retried
            if self._retried:
                return
        else:
            self._group_ok = False  # after a reset, Redis may have restarted empty
        self.progress.failed(exc)
        await self._pause(self.faults.failed(exc))

    async def _ensure_group(self) -> bool:
        created = await restore_group(
            self.redis, self.stream, self.group, recovering=self._group_seen
        )
        self._group_seen = True
        if created:
            self._cursor = "0-0"  # a new pending list: sweep it from the start
        if self._on_group is not None:
            await self._on_group()
        return created

    async def _recreated(self) -> bool:
        """After a read error: True once the group exists again (recreated here or elsewhere)."""
        try:
            await self._ensure_group()
            return True
        except REDIS_FAULTS:
            return False

    async def ack(self, delivery: PendingEntry) -> None:
        """Acknowledge an entry whose outcome lives outside Redis (e.g. a Slack message sent).

        Retried in place while Redis fails (``XACK`` is idempotent), so the work the entry
        stood for is not redone because the link reset just then.
        """
        await retry_transient(
            lambda: self.redis.xack(self.stream, self.group, delivery.entry_id), self.handling
        )

    async def dead_letter(self, delivery: PendingEntry, reason: str) -> None:
        """Move an entry that can never succeed to the dead-letter stream, acknowledging it."""
        dead = await retry_transient(
            lambda: pending.dead_letter(self.redis, delivery, reason, dead_stream=self.dead_stream),
            self.handling,
        )
        if dead is not None:
            await self._dead(dead)

    async def _dead(self, dead: DeadEntry) -> None:
        """One ERROR line per dead letter, naming its request; then the ``on_dead`` hook."""
        extra = {"entry_id": dead.entry_id, "dead_letter_id": dead.dead_id}
        request_id, _ = request_of(dead.fields)
        if request_id is not None:
            extra["request_id"] = request_id
        log.error(
            "dead-lettered %s entry %s: %s", self.stream, dead.entry_id, dead.reason, extra=extra
        )
        if self._on_dead is not None:
            try:
                await self._on_dead(dead)
            except REDIS_FAULTS as exc:
                log.warning("could not note dead letter %s: %s", dead.dead_id, exc, extra=extra)

    async def _wait_for_slot(self) -> bool:
        """Wait until a handler slot is free; False once stopping."""
        while self.in_flight >= self._batch and not self._stopping.is_set():
            self._slot_free.clear()
            await self._slot_free.wait()
        return not self._stopping.is_set()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on stop."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return

    async def _next_deliveries(self, room: int) -> list[PendingEntry]:
        if time.monotonic() - self._last_claim >= self._claim_every_s:
            claimed = await self._claim_idle(room)
            if claimed:
                return claimed
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=room, block=self._block_ms
        )
        return [
            PendingEntry(self.stream, self.group, text(entry_id), entry_fields(fields))
            for _stream, entries in reply or []
            for entry_id, fields in entries
            if fields is not None
        ]

    async def _claim_idle(self, room: int) -> list[PendingEntry]:
        """Take over entries idle for longer than ``claim_idle_ms`` (dead consumers' work)."""
        result = await pending.reclaim(
            self.redis,
            self.stream,
            self.group,
            self.consumer,
            dead_stream=self.dead_stream,
            min_idle_ms=self._claim_idle_ms,
            cursor=self._cursor,
            count=room,
            max_deliveries=self._max_deliveries,
            errors=self._errors,
        )
        self._cursor = result.cursor
        if self._cursor == "0-0":
            self._last_claim = time.monotonic()
            self.claim_passes += 1
        for dead in result.dead:
            self._errors.pop(dead.entry_id, None)
            await self._dead(dead)
        if result.deliveries:
            log.info("claimed %d idle %s entries", len(result.deliveries), self.stream)
        return result.deliveries

    def _start(self, delivery: PendingEntry) -> None:
        if delivery.entry_id not in self._in_flight:
            self._in_flight[delivery.entry_id] = asyncio.create_task(self._handle(delivery))

    async def _handle(self, delivery: PendingEntry) -> None:
        try:
            await self._handle_until_done(delivery)
        finally:
            self._in_flight.pop(delivery.entry_id, None)
            self._slot_free.set()

    async def _handle_until_done(self, delivery: PendingEntry) -> None:
        """Run the handler; again after a backoff when Redis failed under it (every handler
        tolerates a redelivery, and this is one, only sooner). Any other error leaves the
        entry pending, for a redelivery once idle and a dead letter after too many."""
        while True:
            try:
                await self._handler(delivery)
            except RetryLater as exc:
                self._errors[delivery.entry_id] = describe(exc, limit=500)
                log.info(
                    "%s entry %s left pending for a retry (%s)",
                    self.stream,
                    delivery.entry_id,
                    type(exc).__name__,
                    extra={"entry_id": delivery.entry_id},
                )
                return
            except Exception as exc:
                if not is_transient(exc):
                    self._errors[delivery.entry_id] = describe(exc, limit=500)
                    log.exception(
                        "handler failed on %s entry %s",
                        self.stream,
                        delivery.entry_id,
                        extra={"entry_id": delivery.entry_id},
                    )
                    return
                await asyncio.sleep(self.handling.failed(exc))  # cut short by the drain
                continue
            self.handling.ok()
            self._errors.pop(delivery.entry_id, None)
            return

    async def _heartbeat_loop(self) -> None:
        wait = self._heartbeat_s
        while True:
            await asyncio.sleep(wait)
            try:
                lost = await pending.touch(
                    self.redis, self.stream, self.group, self.consumer, list(self._in_flight)
                )
            except REDIS_FAULTS as exc:
                # Sooner than the period: entries not touched for claim_idle_ms are taken over.
                wait = min(self._heartbeat_s, self.heartbeats.failed(exc))
                continue
            self.heartbeats.ok()
            wait = self._heartbeat_s
            for entry_id in lost:
                if entry_id in self._in_flight:
                    # Another consumer took it over while this one stalled; the outcome
                    # step's state guard makes sure only one of them records a result.
                    log.warning("lost %s entry %s to another consumer", self.stream, entry_id)

    async def _drain(self) -> None:
        """Let in-flight handlers finish within the grace time; hand back the rest."""
        tasks = list(self._in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=self._grace_s)
        unfinished = list(self._in_flight)
        for entry_id in unfinished:
            self._in_flight[entry_id].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not unfinished:
            return
        try:
            async with asyncio.timeout(HAND_BACK_S):
                await pending.touch(
                    self.redis,
                    self.stream,
                    self.group,
                    self.consumer,
                    unfinished,
                    idle_ms=self._claim_idle_ms,
                )
            log.info("handed back %d unfinished %s entries", len(unfinished), self.stream)
        except HAND_BACK_FAULTS as exc:
            log.warning(
                "could not hand back %s entries (claimable once idle): %s", self.stream, exc
            )
