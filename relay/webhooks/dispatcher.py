"""The dispatcher: events stream in, signed deliveries out, one isolated queue per subscription.

Three loops share one process:

- **fan-out** reads ``keys.EVENTS`` through the ``dispatchers`` consumer group
  (:class:`relay.store.streams.StreamConsumer`) and turns each event into deliveries,
  atomically with its XACK;
- **scheduling** watches ``keys.SUBSCRIPTIONS_READY`` (subscription -> when it
  next has work) and keeps one :class:`SubscriptionRunner` per busy subscription;
- **retention** sweeps old final deliveries.

Any number of worker processes may run it: the consumer group splits the events,
and leases in each subscription's queue split the deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from relay.core.clock import epoch_ms
from relay.core.events import Event
from relay.store import keys
from relay.store.connection import text
from relay.store.faults import REDIS_FAULTS, RedisFaults
from relay.store.pending import PendingEntry
from relay.store.streams import StreamConsumer, consumer_name
from relay.webhooks.claim_step import StepBatcher
from relay.webhooks.deliveries import DeliveryStore
from relay.webhooks.fanout import FanOutBatcher, alert_rows
from relay.webhooks.keyspace import NewDelivery
from relay.webhooks.models import TargetKind
from relay.webhooks.oncall import PAGERDUTY_TARGET, SLACK_TARGET, OnCallRules, disabled_alerts
from relay.webhooks.policy import AttemptBudget, FailureLog
from relay.webhooks.runner import RunnerConfig, SubscriptionRunner
from relay.webhooks.sender import Sender
from relay.webhooks.subscriptions import SubscriptionStore
from relay.worker.health import ReadProgress

log = logging.getLogger(__name__)

SYSTEM_CAP = 2  # on-call targets: a couple at a time is plenty, and polite to Slack
_SCAN = 500  # subscriptions looked at per scheduling turn


@dataclass
class DispatcherConfig:
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    poll_s: float = 0.5  # how often other workers' new work is looked for
    sweep_every_s: float = 60.0
    fanout_concurrency: int = 256  # stream entries in hand; each read is one Lua write
    block_ms: int = 1000  # longest wait for a new event (and so for a stop to take effect)
    claim_idle_ms: int = 60_000  # a dead worker's events are fanned out by another after this
    stop_grace_s: float = 5.0


class Dispatcher:
    """Runs fan-out, per-subscription delivery and retention until :meth:`stop`."""

    def __init__(
        self,
        redis: aioredis.Redis,
        sender: Sender,
        *,
        rules: OnCallRules,
        config: DispatcherConfig | None = None,
        consumer: str | None = None,
    ) -> None:
        self.redis = redis
        self.sender = sender
        self.rules = rules
        self.config = config or DispatcherConfig()
        self._subscriptions = SubscriptionStore(redis)
        self._deliveries = DeliveryStore(redis)
        self._fan_out = FanOutBatcher(redis, self._subscriptions, rules)
        runner = self.config.runner
        self._steps = StepBatcher(redis, default_cap=runner.default_cap, lease_ms=runner.lease_ms)
        self._runners: dict[str, tuple[SubscriptionRunner, asyncio.Task[None]]] = {}
        # Each subscription's pace and failure log outlive its runners (one per busy spell).
        self._budgets: dict[str, tuple[AttemptBudget, FailureLog]] = {}
        self._kick = asyncio.Event()
        self._stopping = asyncio.Event()
        self.scheduling = RedisFaults("webhook scheduling")
        self.stepping = RedisFaults("webhook delivery steps")  # shared by every runner
        self.sweeping = RedisFaults("webhook retention")
        self._consumer = StreamConsumer(
            redis,
            keys.EVENTS,
            keys.EVENTS_GROUP,
            consumer_name(consumer),
            self._handle_event,
            batch=self.config.fanout_concurrency,
            block_ms=self.config.block_ms,
            claim_idle_ms=self.config.claim_idle_ms,
            # The on-call targets are subscriptions in Redis: made again with the group,
            # so alerts still go out after Redis lost its data.
            on_group=self._ensure_targets,
        )

    @property
    def progress(self) -> ReadProgress:
        """The events reader's progress (for the worker's readiness)."""
        return self._consumer.progress

    @property
    def watched(self) -> tuple[ReadProgress | RedisFaults, ...]:
        """What the worker's readiness checks: the events reader and every loop's Redis."""
        return (*self._consumer.watched, self.scheduling, self.stepping, self.sweeping)

    def stop(self) -> None:
        """Stop taking work; in-flight sends get the grace time, the rest is handed back."""
        self._stopping.set()
        self._kick.set()
        self._consumer.stop(self.config.stop_grace_s)

    async def close(self) -> None:
        """Release the HTTP session and Slack client (after :meth:`run` returned)."""
        await self.sender.close()

    async def _route_disabled(self) -> None:
        """Once per start: subscriptions disabled by an earlier version get routed again."""
        try:
            routed = await self._subscriptions.route_disabled()
        except REDIS_FAULTS as exc:
            log.warning("disabled subscriptions not re-routed: %s", exc)
            return
        if routed:
            log.info(
                "disabled subscriptions routed (their events are kept as skipped)",
                extra={"count": routed},
            )

    async def run(self) -> None:
        await self._route_disabled()
        loops = [
            asyncio.create_task(self._consumer.run()),
            asyncio.create_task(self._schedule_loop()),
            asyncio.create_task(self._sweep_loop()),
        ]
        try:
            await self._stopping.wait()
        finally:
            await self._wind_down(loops)

    async def _wind_down(self, loops: list[asyncio.Task[None]]) -> None:
        for runner, _task in self._runners.values():
            runner.stop()
        tasks = [task for _runner, task in self._runners.values()]
        await asyncio.gather(loops[0], *tasks, return_exceptions=True)
        for loop in loops[1:]:
            loop.cancel()
        await asyncio.gather(*loops[1:], return_exceptions=True)

    async def _ensure_targets(self) -> None:
        if self.rules.slack_channel:
            await self._subscriptions.ensure_target(SLACK_TARGET, TargetKind.SLACK, SYSTEM_CAP)
        if self.rules.pagerduty:
            await self._subscriptions.ensure_target(
                PAGERDUTY_TARGET, TargetKind.PAGERDUTY, SYSTEM_CAP
            )

    # --- fan-out ----------------------------------------------------------------

    async def _handle_event(self, entry: PendingEntry) -> None:
        try:
            event = Event.from_stream(entry.fields)
        except (ValidationError, KeyError, ValueError) as exc:
            await self._consumer.dead_letter(entry, f"not an event: {exc}"[:500])
            return
        fields = entry.fields
        created = await self._fan_out.submit(
            entry.entry_id, event, fields.get("body"), fields.get("traceparent", "")
        )
        if created:
            self._kick.set()

    # --- scheduling ---------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        while not self._stopping.is_set():
            self._kick.clear()
            try:
                wait_s = await self._schedule_once()
                self.scheduling.ok()
            except REDIS_FAULTS as exc:
                wait_s = max(self.config.poll_s, self.scheduling.failed(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=wait_s)

    async def _schedule_once(self) -> float:
        """Start or poke a runner for every subscription with due work; the wait until more.

        A subscription whose runner here already has all its slots busy is skipped:
        its next step reschedules it, so it must not keep this loop spinning.
        """
        now = epoch_ms()
        entries: list[Any] = await self.redis.zrange(
            keys.SUBSCRIPTIONS_READY, 0, _SCAN - 1, withscores=True
        )
        for raw, score in entries:
            if score > now:
                return max(0.005, min(self.config.poll_s, (float(score) - now) / 1000))
            self._ensure_runner(text(raw))
        return 0.005 if len(entries) == _SCAN else self.config.poll_s

    def _ensure_runner(self, sid: str) -> None:
        existing = self._runners.get(sid)
        if existing is not None and not existing[1].done():
            existing[0].poke()
            return
        budget, failures = self._budgets.setdefault(sid, (AttemptBudget(), FailureLog()))
        runner = SubscriptionRunner(
            sid,
            steps=self._steps,
            sender=self.sender,
            config=self.config.runner,
            disable_alerts=self._disable_alerts,
            faults=self.stepping,
            budget=budget,
            failures=failures,
        )
        task = asyncio.create_task(runner.run())
        self._runners[sid] = (runner, task)
        task.add_done_callback(functools.partial(self._runner_done, sid))

    def _runner_done(self, sid: str, task: asyncio.Task[None]) -> None:
        current = self._runners.get(sid)
        if current is not None and current[1] is task:
            del self._runners[sid]
        if not task.cancelled() and task.exception() is not None:
            log.error("runner for %s crashed", sid, exc_info=task.exception())
        self._kick.set()

    def _disable_alerts(self, sid: str, reason: str, now_ms: int) -> list[NewDelivery]:
        alerts = disabled_alerts(sid, reason, self.rules)
        log.warning("subscription %s disabled: %s", sid, reason, extra={"subscription_id": sid})
        return alert_rows(alerts, source_id=sid, kind="relay.subscription_disabled", now_ms=now_ms)

    # --- retention ------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                raw: list[Any] = await self.redis.zrange(keys.SUBSCRIPTIONS, 0, -1)
                ids = [text(i) for i in raw]
                removed = await self._deliveries.sweep(subscription_ids=ids)
                self.sweeping.ok()
                if removed:
                    log.info("retention removed %d deliveries", removed)
            except REDIS_FAULTS as exc:
                self.sweeping.failed(exc)  # the next sweep, on its schedule, retries
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.config.sweep_every_s)
