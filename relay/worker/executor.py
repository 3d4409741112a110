"""The executor: consumes the command stream and carries each command out on Glider.

- rebalance: ``POST .../rebalance``; a 202 records the operation and schedules its
  first poll. Glider has no idempotency key, so what may be sent and what each
  answer means is :mod:`relay.core.post_rules` (pure): a POST is noted in the record
  just before it leaves, and once one may have reached Glider it is never sent
  again; the request watches ``lastRebalanceAt`` until a deadline instead, and
  ends completed or ``failed`` with code ``unknown_outcome``. A POST Glider
  provably never processed (failed connect, per-IP 429) is retried with backoff
  for ``retry_budget_s``; a refusal (cooldown 429, 400/401/403/404) is ``rejected``.
- pause / resume: ``POST .../stop`` / ``.../start`` (idempotent); final at once.
  Their refusals are ``rejected``; 5xx, 429 rate limits, timeouts and connection
  errors are retried with backoff for ``retry_budget_s``, then ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis
from pydantic import ValidationError

from relay import tracing
from relay.core import post_rules, trace, transitions
from relay.core.backoff import retry_wait
from relay.core.clock import Clock, to_ms, utc_now
from relay.core.commands import Action, QueuedCommand
from relay.core.error_codes import error_code, error_message
from relay.core.plans import Plan
from relay.core.poll_policy import PollPolicy
from relay.core.records import RequestRecord, RequestState
from relay.glider import (
    CooldownActive,
    GliderClient,
    GliderError,
    RateLimited,
)
from relay.store import keys, outcomes
from relay.store.dead_letters import request_of
from relay.store.faults import REDIS_FAULTS, is_transient, retry_transient
from relay.store.pending import DeadEntry, PendingEntry
from relay.store.ratelimit import SharedRateLimiter
from relay.store.requests import RequestStore
from relay.store.streams import StreamConsumer

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
REFUSALS = post_rules.REFUSALS


class _NotPosted(Exception):
    """Raised from the POST's before-send hook: a POST of this request is in doubt."""


class _NoteUnknown(Exception):
    """Raised from the POST's before-send hook: Redis failed while the POST was being noted."""


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
    unsure_deadline_s: float = 900.0  # how long a rebalance POST in doubt is watched for


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
        self._requests = RequestStore(redis)
        self._glider = glider
        self._limiter = limiter
        self._policy = policy or PollPolicy()
        self._options = options or ExecutorOptions()
        self._rules = post_rules.Rules(
            retry_budget_s=self._options.retry_budget_s,
            retry_cap_s=self._options.retry_cap_s,
            deadline_s=self._options.unsure_deadline_s,
        )
        self._clock = clock
        self._sleep = sleep
        self._locks = KeyedLocks()
        self.consumer = StreamConsumer(
            redis,
            keys.COMMAND_STREAM,
            keys.COMMANDS_GROUP,
            consumer,
            self.handle,
            batch=batch,
            claim_idle_ms=claim_idle_ms,
            dead_stream=keys.COMMANDS_DEAD,
            on_dead=self._note_dead,
        )

    async def run(self) -> None:
        await self.consumer.run()

    async def _note_dead(self, dead: DeadEntry) -> None:
        """A command given up on (delivered too often without an outcome): its request ends
        failed, ``not_processed``, and the requester, the card and the subscribers hear it,
        instead of it waiting as queued for good (holding its portfolio's in-flight mark)."""
        request_id, _ = request_of(dead.fields)
        record = await self._requests.get(request_id) if request_id else None
        if record is None or record.state is not RequestState.QUEUED:
            return
        posts = await self._requests.post_log(record.request_id) or post_rules.PostLog()
        rebalance = record.action is Action.REBALANCE
        message = post_rules.not_processed_message(rebalance, posts, dead.reason)
        plan = transitions.failed(record, self._clock(), post_rules.NOT_PROCESSED, message)
        await outcomes.apply(self._redis, plan)

    def stop(self, grace_s: float) -> None:
        self.consumer.stop(grace_s)

    async def handle(self, delivery: PendingEntry) -> None:
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
            # The Slack request's trace goes on: its Glider calls and events are in it.
            with tracing.span(
                f"execute {command.action.value}",
                trace.parse(command.traceparent),
                kind=tracing.SpanKind.CONSUMER,
                attributes={
                    "glider_relay.request_id": command.request_id,
                    "glider_relay.portfolio_id": command.portfolio_id,
                },
            ):
                await self._execute(delivery, command)

    async def _execute(self, delivery: PendingEntry, command: QueuedCommand) -> None:
        record = await self._requests.get(command.request_id)
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

    async def _rebalance(self, delivery: PendingEntry, record: RequestRecord) -> None:
        """Carry out :func:`relay.core.post_rules.decide` until the request is tracked or final."""
        answer: post_rules.Answer | None = None
        attempt = 0
        while True:
            # Retried in place: Glider's last answer (an operation id) must not be lost to
            # a reset here, or a POST that was accepted would only be watched for.
            posts = await retry_transient(
                lambda: self._requests.post_log(record.request_id), self.consumer.handling
            )
            if posts is None:  # another worker recorded an outcome meanwhile
                await self.consumer.ack(delivery)
                return
            backoff = 0.0
            if answer is not None and answer.kind is post_rules.Kind.NOT_SENT:
                attempt += 1
                backoff = retry_wait(attempt, answer.retry_after_s, cap=self._rules.retry_cap_s)
            decision = post_rules.decide(
                posts, answer, to_ms(self._clock()), self._rules, backoff_s=backoff
            )
            if decision.step is post_rules.Step.POST:
                await self._wait_before_post(decision.wait_s, answer)
                answer = await self._post(record)
            elif decision.step is post_rules.Step.CHECK:
                await self._sleep(decision.wait_s)
                answer = await self._check(record)
            else:
                await self._record(self._final_plan(record, decision), delivery)
                return

    async def _record(self, plan: Plan, delivery: PendingEntry) -> None:
        """Record an outcome and acknowledge its entry, in one step retried in place while
        Redis fails: what Glider answered is not lost to a reset, and a first run that
        landed (its reply lost) makes the next one a no-op (the step is guarded)."""
        await retry_transient(
            lambda: outcomes.apply(self._redis, plan, ack=delivery), self.consumer.handling
        )

    async def _wait_before_post(self, wait_s: float, answer: post_rules.Answer | None) -> None:
        if wait_s <= 0:
            return
        if answer is not None and answer.code == "rate_limited" and self._limiter is not None:
            await self._limiter.penalize(wait_s)
        await self._sleep(wait_s)

    async def _post(self, record: RequestRecord) -> post_rules.Answer | None:
        """One POST, noted in the record just before it leaves; None if it was not sent
        because a POST of this request is in doubt (another worker's, or before a crash)."""
        request_id = record.request_id

        noted_ms = to_ms(self._clock())

        async def note() -> None:
            try:
                began = await outcomes.begin_post(self._redis, request_id, noted_ms)
            except REDIS_FAULTS as exc:
                if is_transient(exc):
                    raise _NoteUnknown from exc
                raise
            if not began:
                raise _NotPosted

        try:
            accepted = await self._glider.trigger_rebalance(record.portfolio_id, before_send=note)
        except _NotPosted:
            return None
        except _NoteUnknown as unknown:
            # Not sent; but a note that landed (its reply lost) would leave a POST in doubt
            # that never left, watched until unknown_outcome instead of posted.
            self.consumer.handling.failed(unknown.__cause__ or unknown)
            await self._take_back(request_id, noted_ms)
            return None
        except GliderError as exc:
            answer = post_rules.post_answer(exc)
            if answer.kind in (post_rules.Kind.REFUSED, post_rules.Kind.NOT_SENT):
                await self._take_back(request_id, noted_ms)
            log.warning(
                "rebalance POST: %s (%s)", exc, answer.kind.value, extra={"request_id": request_id}
            )
            return answer
        return post_rules.Answer(
            post_rules.Kind.ACCEPTED,
            operation_id=accepted.operation_id,
            submitted_at=accepted.submitted_at,
        )

    async def _take_back(self, request_id: str, noted_ms: int) -> None:
        """Mark our POST noted at ``noted_ms`` as never processed, waiting out Redis failures.

        Read back before every try: after a reset the note may not have landed, or the
        take-back may have (its reply lost); only a note still ours (no one else can
        note one while it stands) is taken back, so a retry never takes back another's.
        """
        while True:
            try:
                posts = await self._requests.post_log(request_id)
                if posts is not None and posts.in_doubt and posts.doubt_ms == noted_ms:
                    await outcomes.post_refused(self._redis, request_id)
            except REDIS_FAULTS as exc:
                if not is_transient(exc):
                    raise
                await asyncio.sleep(self.consumer.handling.failed(exc))
                continue
            self.consumer.handling.ok()
            return

    async def _check(self, record: RequestRecord) -> post_rules.Answer:
        """Has a rebalance of the portfolio completed since our POST in doubt?"""
        try:
            portfolio = await self._glider.get_portfolio(record.portfolio_id)
        except GliderError as exc:
            extra = {"request_id": record.request_id}
            log.warning("cannot check the portfolio: %s", exc, extra=extra)
            if isinstance(exc, RateLimited) and self._limiter is not None:
                await self._limiter.penalize(exc.retry_after or 1.0)
            return post_rules.check_failed(exc)
        last = portfolio.schedule.last_rebalance_at if portfolio.schedule else None
        return post_rules.Answer(post_rules.Kind.CHECKED, last_rebalance_at=last)

    def _final_plan(self, record: RequestRecord, decision: post_rules.Decision) -> Plan:
        """The transition a tracked or final decision records."""
        now = self._clock()
        step, operation_id = decision.step, decision.operation_id
        submitted_at = decision.submitted_at
        if step is post_rules.Step.TRACK and operation_id and submitted_at:
            first_poll = now + timedelta(seconds=self._policy.delay(0))
            log.info(
                "rebalance submitted",
                extra={"request_id": record.request_id, "operation_id": operation_id},
            )
            return transitions.submitted(record, now, operation_id, submitted_at, first_poll)
        if step is post_rules.Step.COMPLETED and decision.completed_at:
            log.warning(
                "a rebalance completed after a POST in doubt; not posting again",
                extra={"request_id": record.request_id, "portfolio_id": record.portfolio_id},
            )
            return transitions.completed_unconfirmed(record, now, decision.completed_at)
        if step is post_rules.Step.REJECTED:
            retry_at = None
            if decision.code == "cooldown":
                retry_at = now + timedelta(seconds=decision.retry_after_s or 0)
            return transitions.rejected(record, now, decision.code, decision.message, retry_at)
        return transitions.failed(record, now, decision.code, decision.message)

    async def _set_schedule(self, delivery: PendingEntry, record: RequestRecord) -> None:
        attempt = 0
        first_ms = to_ms(self._clock())
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
            await self._record(transitions.schedule_changed(record, self._clock()), delivery)
            return

    async def _settle_error(
        self,
        delivery: PendingEntry,
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
            await self._record(plan, delivery)
            return True
        wait = retry_wait(attempt, exc.retry_after, cap=self._options.retry_cap_s)
        spent_s = (to_ms(now) - first_ms) / 1000
        if not exc.retryable or spent_s + wait > self._options.retry_budget_s:
            message = f"{error_message(exc)} (after {attempt} attempts)"
            plan = transitions.failed(record, now, error_code(exc), message)
            await self._record(plan, delivery)
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
