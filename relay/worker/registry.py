"""What a worker process can run: a registry of named components.

``glider-relay worker --only executor,poller`` picks entries of :data:`COMPONENTS`;
each is an async factory that builds a :class:`Component` from the shared
:class:`WorkerContext` (Redis, settings, consumer name, Glider and Slack clients).
A new part of the worker adds one entry here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from relay.core.clock import epoch_ms
from relay.core.poll_policy import PollPolicy
from relay.glider import GliderClient
from relay.settings import Settings
from relay.slack.approvals import expire_due, queue_stranded
from relay.slack.client import SlackApi, create_slack_api
from relay.store import keys, pending
from relay.store.audit import AuditStore
from relay.store.faults import REDIS_FAULTS, RedisFaults
from relay.store.health import restore_group
from relay.store.ratelimit import SharedRateLimiter
from relay.store.requests import RECORD_RETENTION_MS, RequestStore
from relay.webhooks.dispatcher import DispatcherConfig
from relay.webhooks.runner import RunnerConfig
from relay.webhooks.schedule import DEFAULT_DELAYS_S, RetrySchedule
from relay.webhooks.wiring import build_dispatcher
from relay.worker.executor import Executor, ExecutorOptions
from relay.worker.health import Watched
from relay.worker.notifier import Notifier
from relay.worker.poller import Poller, PollerOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tuning:
    """Timings of the worker; the defaults are production's, tests shrink them."""

    claim_idle_ms: int = 60_000  # a dead worker's stream entries are taken over after this
    lease_ms: int = 60_000  # a dead poller's operations come due again after this
    grace_s: float = 6.0  # in-flight work's time to finish on SIGTERM (exit within 10 s)
    poll: PollPolicy = field(default_factory=PollPolicy)
    retry_budget_s: float = 300.0  # how long a command is retried on 5xx/timeouts
    unsure_deadline_s: float = 900.0  # how long a rebalance POST in doubt is watched for
    upkeep_every_s: float = 600.0
    approvals_every_s: float = 15.0  # how soon an approval past its deadline is expired
    store_check_s: float = 30.0  # how often Redis's eviction policy and memory are read
    retention_ms: int = 7 * 24 * 3600 * 1000  # acknowledged stream entries kept this long
    webhook_delays_s: tuple[float, ...] = DEFAULT_DELAYS_S  # a delivery's retry schedule


@dataclass(frozen=True)
class Component:
    """A running part of the worker: ``run`` until ``stop``; ``close`` frees what it opened."""

    run: Callable[[], Coroutine[Any, Any, None]]
    stop: Callable[[], None]
    close: Callable[[], Awaitable[None]] | None = None
    readers: tuple[Watched, ...] = ()  # what the worker's /readyz checks


class WorkerContext:
    """What components share in one worker process; clients are made on first use."""

    def __init__(
        self, redis: aioredis.Redis, settings: Settings, *, consumer: str, tuning: Tuning
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.consumer = consumer
        self.tuning = tuning
        self._glider: GliderClient | None = None
        self._slack: SlackApi | None = None
        self.limiter = SharedRateLimiter(redis, settings.glider_max_rps, wait_out_faults=True)

    def glider(self) -> GliderClient:
        """The Glider client: no retries of its own (callers reschedule), shared rate budget."""
        if self._glider is None:
            if self.settings.glider_api_key is None:
                raise RuntimeError("GLIDER_API_KEY is required")
            self._glider = GliderClient(
                str(self.settings.glider_api_url),
                self.settings.glider_api_key,
                timeout=self.settings.glider_timeout_s,
                max_retries=0,
                rate_limiter=self.limiter,
            )
        return self._glider

    def slack(self) -> SlackApi:
        if self._slack is None:
            self._slack = create_slack_api(self.settings)
        return self._slack

    async def close(self) -> None:
        if self._glider is not None:
            await self._glider.close()
        if self._slack is not None:
            await self._slack.close()


ComponentFactory = Callable[[WorkerContext], Awaitable[Component]]


async def executor(ctx: WorkerContext) -> Component:
    worker = Executor(
        ctx.redis,
        ctx.glider(),
        consumer=ctx.consumer,
        limiter=ctx.limiter,
        policy=ctx.tuning.poll,
        options=ExecutorOptions(
            retry_budget_s=ctx.tuning.retry_budget_s,
            unsure_deadline_s=ctx.tuning.unsure_deadline_s,
        ),
        claim_idle_ms=ctx.tuning.claim_idle_ms,
    )
    return Component(
        worker.run,
        lambda: worker.stop(ctx.tuning.grace_s),
        readers=(*worker.consumer.watched, ctx.limiter.faults),
    )


async def poller(ctx: WorkerContext) -> Component:
    worker = Poller(
        ctx.redis,
        ctx.glider(),
        limiter=ctx.limiter,
        policy=ctx.tuning.poll,
        options=PollerOptions(lease_ms=ctx.tuning.lease_ms),
    )
    return Component(
        worker.run,
        lambda: worker.stop(ctx.tuning.grace_s),
        readers=(worker.progress, worker.polling, ctx.limiter.faults),
    )


async def notifier(ctx: WorkerContext) -> Component:
    worker = Notifier(
        ctx.redis,
        ctx.slack(),
        consumer=ctx.consumer,
        claim_idle_ms=ctx.tuning.claim_idle_ms,
        cards=ctx.settings.relay_job_cards,
    )
    return Component(worker.run, lambda: worker.stop(ctx.tuning.grace_s), readers=worker.watched)


async def dispatcher(ctx: WorkerContext) -> Component:
    """Webhook fan-out and delivery (relay.webhooks), on the worker's timings."""
    runner = RunnerConfig(
        schedule=RetrySchedule(delays_s=ctx.tuning.webhook_delays_s),
        lease_ms=ctx.tuning.lease_ms,
        stop_grace_s=ctx.tuning.grace_s,
    )
    config = DispatcherConfig(
        runner=runner, claim_idle_ms=ctx.tuning.claim_idle_ms, stop_grace_s=ctx.tuning.grace_s
    )
    worker = build_dispatcher(ctx.redis, ctx.settings, config=config, consumer=ctx.consumer)
    return Component(worker.run, worker.stop, worker.close, readers=worker.watched)


# Streams whose acknowledged entries upkeep trims, with their consumer group.
_TRIMMED = (
    (keys.COMMAND_STREAM, keys.COMMANDS_GROUP),
    (keys.REPLIES, keys.REPLIES_GROUP),
    (keys.CARDS, keys.CARDS_GROUP),
    (keys.EVENTS, keys.EVENTS_GROUP),
)


async def upkeep(ctx: WorkerContext) -> Component:
    """Trims old acknowledged entries of the command, reply and event streams and audit
    entries past ``AUDIT_RETENTION_DAYS``, forgets consumers (old ``host:pid`` names)
    that hold nothing and were silent for a day, and expires approval requests past their
    deadline: at start (a deadline that passed while no worker ran) and every
    ``approvals_every_s`` after."""
    stopping = asyncio.Event()
    faults = RedisFaults("upkeep")

    async def run() -> None:
        rounds = 0
        next_tidy = 0.0
        while not stopping.is_set():
            if time.monotonic() >= next_tidy:
                try:
                    await _tidy(ctx, recovering=rounds > 0)
                    rounds += 1
                    faults.ok()
                    next_tidy = time.monotonic() + ctx.tuning.upkeep_every_s
                except REDIS_FAULTS as exc:
                    # A failed round is retried soon.
                    next_tidy = time.monotonic() + faults.failed(exc)
            await _expire_approvals(ctx)
            wait = min(ctx.tuning.approvals_every_s, max(0.0, next_tidy - time.monotonic()))
            try:
                await asyncio.wait_for(stopping.wait(), timeout=wait)
            except TimeoutError:
                continue

    return Component(run, stopping.set, readers=(faults,))


async def _expire_approvals(ctx: WorkerContext) -> None:
    try:
        expired = await expire_due(ctx.redis, ctx.slack())
        queued = await queue_stranded(ctx.redis)
    except REDIS_FAULTS as exc:
        log.warning("approval expiry failed (next round retries): %s", exc)
        return
    if expired:
        log.info("upkeep: %d approval requests expired", expired)
    if queued:
        log.info("upkeep: %d approved commands left behind queued", queued)


async def _tidy(ctx: WorkerContext, *, recovering: bool) -> None:
    """One upkeep round; ``recovering``: a group missing now was lost (a first round creates it)."""
    now_ms = epoch_ms()
    forgotten = await RequestStore(ctx.redis).forget_older_than(now_ms - RECORD_RETENTION_MS)
    if forgotten:
        log.info("upkeep: %d expired requests dropped from the index", forgotten)
    retention_days = ctx.settings.audit_retention_days
    aged = await AuditStore(ctx.redis).trim(now_ms=now_ms, retention_days=retention_days)
    if aged:
        log.info("upkeep: %d audit entries older than %d days dropped", aged, retention_days)
    older_than_ms = now_ms - ctx.tuning.retention_ms
    for stream, group in _TRIMMED:
        trimmed = await pending.trim_acknowledged(ctx.redis, stream, older_than_ms=older_than_ms)
        await restore_group(ctx.redis, stream, group, recovering=recovering)
        pruned = await pending.prune_consumers(
            ctx.redis, stream, group, idle_ms=24 * 3600 * 1000, keep=ctx.consumer
        )
        if trimmed or pruned:
            log.info(
                "upkeep of %s: %d entries trimmed, %d consumers pruned", stream, trimmed, pruned
            )


COMPONENTS: dict[str, ComponentFactory] = {
    "executor": executor,
    "poller": poller,
    "notifier": notifier,
    "upkeep": upkeep,
    "dispatcher": dispatcher,
}
