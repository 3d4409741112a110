"""The poller: follows every submitted operation on Glider until it ends.

Every tracked request sits in the due-time sorted set ``keys.POLL_DUE``. A
worker claims what is due with a lease (one Lua step moves each claimed entry's
score to now + lease), so a poller that dies mid-poll leaves entries that come
due again when the lease runs out and another worker takes them. Each poll's
outcome (reschedule, awaiting_user once, final) is one atomic step of
:mod:`relay.store.outcomes`; the schedule is :class:`relay.core.poll_policy.PollPolicy`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from relay import tracing
from relay.core import trace, transitions
from relay.core.clock import Clock, to_ms, utc_now
from relay.core.plans import TRACKED, Plan
from relay.core.poll_policy import PollPolicy
from relay.glider import GliderClient, GliderError, NotFound, Operation, RateLimited
from relay.store import keys, outcomes, polls
from relay.store.faults import (
    HAND_BACK_FAULTS,
    HAND_BACK_S,
    REDIS_FAULTS,
    RedisFaults,
    describe,
    is_transient,
)
from relay.store.ratelimit import SharedRateLimiter
from relay.store.requests import RequestStore, Tracked
from relay.worker.health import ReadProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollerOptions:
    lease_ms: int = 60_000  # longer than one poll can take (request timeout + rate-limit wait)
    concurrency: int = 16
    idle_s: float = 1.0  # longest wait when nothing is due


class Poller:
    """Claims due operations and polls them, at most ``concurrency`` at once."""

    def __init__(
        self,
        redis: aioredis.Redis,
        glider: GliderClient,
        *,
        limiter: SharedRateLimiter | None = None,
        policy: PollPolicy | None = None,
        options: PollerOptions | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._redis = redis
        self._requests = RequestStore(redis)
        self._glider = glider
        self._limiter = limiter
        self._policy = policy or PollPolicy()
        self._options = options or PollerOptions()
        self._clock = clock
        self._rng = rng or random.Random()
        self._in_flight: dict[str, tuple[int, asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self._grace_s = 5.0
        self.progress = ReadProgress("poll schedule")
        self.faults = RedisFaults("claiming polls")
        self.polling = RedisFaults("polling operations")

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop claiming; in-flight polls get ``grace_s``, the rest are handed back."""
        self._grace_s = grace_s
        self._stopping.set()
        self._changed.set()

    async def run(self) -> None:
        """Claim and poll until :meth:`stop`; Redis failing is waited out with backoff."""
        try:
            while not self._stopping.is_set():
                room = self._options.concurrency - len(self._in_flight)
                started = 0
                if room <= 0:
                    self.progress.ok()  # busy, not stuck: every poll is bounded in time
                else:
                    try:
                        started = len(await self._claim_and_start(room))
                    except REDIS_FAULTS as exc:
                        self.progress.failed(exc)
                        await self._rest(self.faults.failed(exc))
                        continue
                    self.progress.ok()
                    self.faults.ok()
                if started == 0:
                    await self._idle()
        finally:
            await self._drain()

    async def tick(self) -> int:
        """Claim what is due now (up to ``concurrency``), poll it, wait; how many were polled."""
        tasks = await self._claim_and_start(self._options.concurrency)
        await asyncio.gather(*tasks)
        return len(tasks)

    async def _claim_and_start(self, room: int) -> list[asyncio.Task[None]]:
        now_ms = to_ms(self._clock())
        lease = now_ms + self._options.lease_ms
        claimed = await polls.claim_due(self._redis, now_ms=now_ms, lease_until_ms=lease, room=room)
        tasks = []
        for request_id in claimed:
            if request_id in self._in_flight:
                continue
            task = asyncio.create_task(self._poll_guarded(request_id))
            self._in_flight[request_id] = (lease, task)
            tasks.append(task)
        return tasks

    async def _idle(self) -> None:
        """Wait until the earliest entry is due, a poll finishes, or stop; at most ``idle_s``."""
        wait = self._options.idle_s
        try:
            first: Any = await self._redis.zrange(keys.POLL_DUE, 0, 0, withscores=True)
            if first:
                due_in_ms = float(first[0][1]) - to_ms(self._clock())
                wait = min(wait, max(0.0, due_in_ms / 1000))
        except REDIS_FAULTS as exc:
            wait = max(wait, self.faults.failed(exc))
        await self._rest(wait)

    async def _rest(self, seconds: float) -> None:
        """Wait ``seconds``, or until a poll finishes or stop."""
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=max(seconds, 0.01))
        except TimeoutError:
            return

    async def _poll_guarded(self, request_id: str) -> None:
        try:
            while True:
                try:
                    await self.poll(request_id)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    # Redis failed under the poll: poll again once it answers (every
                    # step of a poll is guarded, so a step that landed is not redone).
                    await asyncio.sleep(self.polling.failed(exc))  # cut short by the drain
                    continue
                self.polling.ok()
                return
        except Exception:
            # The lease runs out and the entry comes due again: nothing is lost.
            log.exception("polling %s failed", request_id, extra={"request_id": request_id})
        finally:
            self._in_flight.pop(request_id, None)
            self._changed.set()

    async def poll(self, request_id: str) -> None:
        """Ask Glider about one tracked operation and record what it says."""
        tracked = await self._requests.tracked(request_id)
        if tracked is None or tracked.record.state not in TRACKED:
            await self._redis.zrem(keys.POLL_DUE, request_id)  # nothing left to follow
            return
        record = tracked.record
        now = self._clock()
        started_ms = tracked.tracked_ms or to_ms(record.submitted_at or record.accepted_at)
        age_s = max(0.0, (to_ms(now) - started_ms) / 1000)
        if record.operation_id is None:
            await self._redis.zrem(keys.POLL_DUE, request_id)
            return
        # Each poll is a span of the command's trace, as is the event it may record.
        with tracing.span(
            "poll operation",
            trace.parse(record.traceparent),
            attributes={"glider_relay.request_id": request_id},
        ):
            await self._ask(tracked, record.operation_id, now, age_s)

    async def _ask(self, tracked: Tracked, operation_id: str, now: datetime, age_s: float) -> None:
        try:
            operation = await self._glider.get_operation(tracked.record.portfolio_id, operation_id)
        except GliderError as exc:
            await outcomes.apply(self._redis, await self._after_error(tracked, exc, now, age_s))
            return
        await outcomes.apply(self._redis, self._after_answer(tracked, operation, now, age_s))

    def _after_answer(
        self, tracked: Tracked, operation: Operation, now: datetime, age_s: float
    ) -> Plan:
        record = tracked.record
        if operation.is_terminal:
            return transitions.finished(record, now, operation)
        if self._policy.is_stuck(age_s):
            return transitions.stuck(record, now, timedelta(seconds=self._policy.deadline_s))
        next_poll = now + timedelta(seconds=self._next_in(age_s, None))
        return transitions.progressed(record, now, operation, next_poll)

    async def _after_error(
        self, tracked: Tracked, exc: GliderError, now: datetime, age_s: float
    ) -> Plan:
        record = tracked.record
        extra = {"request_id": record.request_id, "operation_id": record.operation_id}
        if isinstance(exc, NotFound):
            log.error("Glider no longer knows the operation", extra=extra)
            return transitions.vanished(record, now, f"Glider answered 404: {exc.message}")
        if isinstance(exc, RateLimited) and self._limiter is not None:
            await self._limiter.penalize(exc.retry_after or self._policy.min_s)
        if self._policy.is_stuck(age_s):
            return transitions.stuck(record, now, timedelta(seconds=self._policy.deadline_s))
        log.warning("polling the operation failed: %s", exc, extra=extra)
        return transitions.poll_later(
            record, now + timedelta(seconds=self._next_in(age_s, exc.retry_after))
        )

    def _next_in(self, age_s: float, retry_after: float | None) -> float:
        following = self._policy.next_age(age_s, retry_after_s=retry_after, rng=self._rng)
        return max(0.0, following - age_s)

    async def _drain(self) -> None:
        """Let in-flight polls finish within the grace time; hand back the rest as due now."""
        tasks = [task for _, task in self._in_flight.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=self._grace_s)
        unfinished = dict(self._in_flight)
        for _, task in unfinished.values():
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not unfinished:
            return
        by_lease: dict[int, list[str]] = {}
        for request_id, (lease, _) in unfinished.items():
            by_lease.setdefault(lease, []).append(request_id)
        now_ms = to_ms(self._clock())
        try:
            # One call per lease, all within HAND_BACK_S (the leases run out by themselves).
            async with asyncio.timeout(HAND_BACK_S):
                for lease, request_ids in by_lease.items():
                    await polls.hand_back(
                        self._redis, request_ids, now_ms=now_ms, lease_until_ms=lease
                    )
        except HAND_BACK_FAULTS as exc:
            log.warning(
                "could not hand back %d unfinished polls (due when their leases end): %s",
                len(unfinished),
                describe(exc),
            )
            return
        log.info("handed back %d unfinished polls", len(unfinished))
