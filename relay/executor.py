"""The executor: consumes the command stream and carries each command out on Glider.

- rebalance: ``POST .../rebalance``; a 202 records the operation and schedules its
  first poll. Glider has no idempotency key, so before a POST that may repeat an
  earlier one (a redelivery, or a retry after a timeout or 5xx), the executor
  notes it in the record first and checks what is known: a record no longer
  queued is only acknowledged; a portfolio whose ``lastRebalanceAt`` is later
  than our first POST has been rebalanced since, so nothing is posted again.
  Otherwise it posts again: while the first operation still runs Glider answers
  with the same ``operationId`` (its in-flight dedupe). The accepted risk: an
  operation that *failed* within the redelivery delay (about a minute) after a
  crash between POST and record is followed by a second one.
- pause / resume: ``POST .../stop`` / ``.../start`` (idempotent); final at once.
- Glider refusals (cooldown 429, 400/401/403/404) are ``rejected``, not retried;
  5xx, 429 rate limits, timeouts and connection errors are retried with backoff
  for ``retry_budget_s`` counted from the first attempt, then ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from pydantic import ValidationError

from relay import keys, outcomes, transitions
from relay.backoff import retry_wait
from relay.commands import Action, QueuedCommand
from relay.error_codes import error_code, error_message
from relay.glider import (
    BadRequest,
    CooldownActive,
    Forbidden,
    GliderClient,
    GliderError,
    NotFound,
    RateLimited,
    Unauthorized,
)
from relay.poll_policy import PollPolicy
from relay.queue import load_record
from relay.ratelimit import SharedRateLimiter
from relay.records import RequestRecord, RequestState
from relay.streams import Delivery, StreamConsumer

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
REFUSALS = (BadRequest, Unauthorized, Forbidden, NotFound, CooldownActive)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class KeyedLocks:
    """One FIFO lock per key, forgotten once nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    retry_budget_s: float = 300.0
    retry_cap_s: float = 30.0


class Executor:
    """Handles command-stream entries; :attr:`consumer` runs it (``await executor.run()``)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        glider: GliderClient,
        *,
        consumer: str,
        limiter: SharedRateLimiter | None = None,
        policy: PollPolicy | None = None,
        options: ExecutorOptions | None = None,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        claim_idle_ms: int = 60_000,
        batch: int = 16,
    ) -> None:
        self._redis = redis
        self._glider = glider
        self._limiter = limiter
        self._policy = policy or PollPolicy()
        self._options = options or ExecutorOptions()
        self._clock = clock
        self._sleep = sleep
        self._locks = KeyedLocks()
        self.consumer = StreamConsumer(
            redis,
            keys.COMMANDS,
            keys.COMMANDS_GROUP,
            consumer,
            self.handle,
            batch=batch,
            claim_idle_ms=claim_idle_ms,
            dead_stream=keys.COMMANDS_DEAD,
        )

    async def run(self) -> None:
        await self.consumer.run()

    def stop(self, grace_s: float) -> None:
        self.consumer.stop(grace_s)

    async def handle(self, delivery: Delivery) -> None:
        """Carry out one command; its outcome and the ack are one atomic step.

        Commands for one portfolio run one at a time, in stream order, within this
        worker (so a quick /pause then /resume cannot end up paused).
        """
        try:
            command = QueuedCommand.model_validate_json(delivery.fields.get("command", ""))
        except ValidationError as exc:
            await self.consumer.dead_letter(delivery, f"not a command: {exc.errors()[0]['msg']}")
            return
        async with self._locks.hold(command.portfolio_id):
            await self._execute(delivery, command)

    async def _execute(self, delivery: Delivery, command: QueuedCommand) -> None:
        record = await load_record(self._redis, command.request_id)
        if record is None:
            await self.consumer.dead_letter(delivery, f"no record of {command.request_id}")
            return
        if record.state is not RequestState.QUEUED:
            # A redelivery of a command whose outcome is already recorded.
            await self.consumer.ack(delivery)
            return
        context = {"request_id": record.request_id, "portfolio_id": record.portfolio_id}
        log.info("executing %s", record.action.value, extra=context)
        if record.action is Action.REBALANCE:
            await self._rebalance(delivery, record)
        else:
            await self._set_schedule(delivery, record)

    async def _rebalance(self, delivery: Delivery, record: RequestRecord) -> None:
        attempt = 0
        while True:
            attempt += 1
            noted = await outcomes.note_post(self._redis, record.request_id, _ms(self._clock()))
            if noted is None:  # another worker recorded an outcome meanwhile
                await self.consumer.ack(delivery)
                return
            first_ms, posts = noted
            if posts > 1 and await self._rebalanced_since(delivery, record, first_ms):
                return
            try:
                accepted = await self._glider.trigger_rebalance(record.portfolio_id)
            except GliderError as exc:
                if await self._settle_error(delivery, record, exc, attempt, first_ms):
                    return
                continue
            now = self._clock()
            first_poll = now + timedelta(seconds=self._policy.delay(0))
            plan = transitions.submitted(
                record, now, accepted.operation_id, accepted.submitted_at, first_poll
            )
            await outcomes.apply(self._redis, plan, ack=delivery)
            log.info(
                "rebalance submitted",
                extra={"request_id": record.request_id, "operation_id": accepted.operation_id},
            )
            return

    async def _rebalanced_since(
        self, delivery: Delivery, record: RequestRecord, first_ms: int
    ) -> bool:
        """Did a rebalance of the portfolio complete after our first POST? Then record that."""
        try:
            portfolio = await self._glider.get_portfolio(record.portfolio_id)
        except GliderError as exc:
            log.warning("cannot check the portfolio before re-posting: %s", exc)
            return False
        last = portfolio.schedule.last_rebalance_at if portfolio.schedule else None
        if last is None or _ms(last) < first_ms:
            return False
        plan = transitions.completed_unconfirmed(record, self._clock(), last)
        await outcomes.apply(self._redis, plan, ack=delivery)
        log.warning(
            "a rebalance completed after an earlier POST; not posting again",
            extra={"request_id": record.request_id, "portfolio_id": record.portfolio_id},
        )
        return True

    async def _set_schedule(self, delivery: Delivery, record: RequestRecord) -> None:
        attempt = 0
        first_ms = _ms(self._clock())
        while True:
            attempt += 1
            try:
                if record.action is Action.PAUSE:
                    await self._glider.stop(record.portfolio_id)
                else:
                    await self._glider.start(record.portfolio_id)
            except GliderError as exc:
                if await self._settle_error(delivery, record, exc, attempt, first_ms):
                    return
                continue
            plan = transitions.schedule_changed(record, self._clock())
            await outcomes.apply(self._redis, plan, ack=delivery)
            return

    async def _settle_error(
        self,
        delivery: Delivery,
        record: RequestRecord,
        exc: GliderError,
        attempt: int,
        first_ms: int,
    ) -> bool:
        """Record a refusal or a final failure (True), or wait before the next try (False)."""
        now = self._clock()
        if isinstance(exc, REFUSALS):
            retry_at = None
            if isinstance(exc, CooldownActive):
                retry_at = now + timedelta(seconds=exc.retry_after or 0)
            plan = transitions.rejected(record, now, error_code(exc), error_message(exc), retry_at)
            await outcomes.apply(self._redis, plan, ack=delivery)
            return True
        wait = retry_wait(attempt, exc.retry_after, cap=self._options.retry_cap_s)
        spent_s = (_ms(now) - first_ms) / 1000
        if not exc.retryable or spent_s + wait > self._options.retry_budget_s:
            message = f"{error_message(exc)} (after {attempt} attempts)"
            plan = transitions.failed(record, now, error_code(exc), message)
            await outcomes.apply(self._redis, plan, ack=delivery)
            return True
        if isinstance(exc, RateLimited) and self._limiter is not None:
            await self._limiter.penalize(wait)
        log.info(
            "retrying %s in %.1f s: %s",
            record.action.value,
            wait,
            exc,
            extra={"request_id": record.request_id},
        )
        await self._sleep(wait)
        return False
