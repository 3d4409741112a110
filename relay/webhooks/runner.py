"""One subscription's delivery loop inside one worker: claim, send, record, repeat.

A runner only ever touches its own subscription's queue, with at most the
subscription's cap of requests in flight, so a subscriber that hangs for the
full timeout or fails every call holds only its own slots. Results are recorded
in batches: whatever finished while the previous step was in Redis goes in the
next one, and the :class:`StepBatcher` sends the steps of every busy subscription
of the worker together, so delivery costs a round trip per batch, not per request.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from relay import metrics
from relay.core.clock import epoch_ms
from relay.store.faults import REDIS_FAULTS, RedisFaults
from relay.webhooks.claim_step import (
    LEASE_MS,
    Claimed,
    Finished,
    Report,
    StepBatcher,
    StepReply,
    Target,
)
from relay.webhooks.keyspace import NewDelivery
from relay.webhooks.models import TargetKind
from relay.webhooks.policy import AttemptBudget, AttemptResult, FailureLog, decide
from relay.webhooks.schedule import RetrySchedule
from relay.webhooks.sender import Sender

log = logging.getLogger(__name__)

# (subscription id, reason, now ms) -> on-call delivery rows for a disabled subscription
DisableAlerts = Callable[[str, str, int], list[NewDelivery]]


@dataclass
class RunnerConfig:
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    default_cap: int = 10
    lease_ms: int = LEASE_MS
    stop_grace_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random)


@functools.lru_cache(maxsize=8)
def _counter(status: str) -> Counter:
    """The attempts counter of one outcome (labels looked up once, not per attempt)."""
    return metrics.DELIVERIES.labels(result=status)


_EVENT_IDS = {
    "requestId": "request_id",
    "portfolioId": "portfolio_id",
    "operationId": "operation_id",
}


def _event_ids(body: bytes) -> dict[str, str]:
    """The request, portfolio and operation an event body names (none for other bodies)."""
    try:
        data = json.loads(body).get("data")
    except (ValueError, AttributeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {ours: str(data[theirs]) for theirs, ours in _EVENT_IDS.items() if data.get(theirs)}


def _log_final(sid: str, kind: TargetKind | None, claimed: Claimed, finished: Finished) -> None:
    """One line per delivery that ended: delivered / alert sent (INFO), or dead (WARNING)."""
    if finished.status == "succeeded":
        level = logging.INFO
    elif finished.status == "dead":
        level = logging.WARNING
    else:
        return
    if not log.isEnabledFor(level):
        return  # the body is parsed for its ids only when the line is written
    alert = kind is not None and kind is not TargetKind.WEBHOOK
    extra = {
        "subscription_id": sid,
        "delivery_id": claimed.delivery_id,
        "event_type": claimed.event_type,
        "tries": claimed.tries,
        **_event_ids(claimed.body),
    }
    if finished.status == "succeeded":
        log.info("alert sent" if alert else "webhook delivered", extra=extra)
    else:
        log.warning("alert dead" if alert else "webhook dead", extra=extra)


def _observe(
    sid: str,
    batch: list[tuple[Claimed, AttemptResult]],
    report: Report,
    before: Target | None,
    after: Target | None,
) -> None:
    """Count recorded attempts (by outcome) and a disable this step carried out; log each
    delivery that ended."""
    known = after or before
    kind = known.kind if known is not None else None
    for (claimed, result), finished in zip(batch, report.finished, strict=True):
        _log_final(sid, kind, claimed, finished)
        _counter(finished.status).inc()
        if result.final:
            metrics.DELIVERIES_REJECTED.inc()
        metrics.DELIVERY_LATENCY.observe(result.attempt.latencyMs / 1000)
    if report.disable and (before is None or before.enabled) and after and not after.enabled:
        metrics.SUBSCRIPTIONS_DISABLED.labels(reason=report.disable).inc()


class SubscriptionRunner:
    """Delivers one subscription's due deliveries until none is left, then returns."""

    def __init__(
        self,
        sid: str,
        *,
        steps: StepBatcher,
        sender: Sender,
        config: RunnerConfig,
        disable_alerts: DisableAlerts,
        faults: RedisFaults | None = None,
        budget: AttemptBudget | None = None,
        failures: FailureLog | None = None,
    ) -> None:
        self.sid = sid
        self._faults = faults or RedisFaults("webhook delivery steps")
        self._steps = steps
        self._sender = sender
        self._config = config
        self._disable_alerts = disable_alerts
        self._wake = asyncio.Event()
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._done: list[tuple[Claimed, AttemptResult]] = []
        self._released: list[str] = []
        self._target: Target | None = None
        self._stopping = False
        # Kept by the dispatcher across runners of the subscription, so a new runner
        # cannot reset a failing subscription's pace.
        self._budget = budget or AttemptBudget()
        self._failures = failures or FailureLog()
        self._failing = False

    def _allowed(self, now_ms: int) -> int:
        cap = self._target.cap if self._target else self._config.default_cap
        return self._budget.allowed(
            cap=cap, in_flight=len(self._sending), failing=self._failing, now_ms=now_ms
        )

    def poke(self) -> None:
        """Look for due work now (new deliveries, or a retry came due), if there is room."""
        if self._allowed(epoch_ms()) > 0:
            self._wake.set()

    def stop(self) -> None:
        """Claim nothing more; finish or hand back what is in flight."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            now = epoch_ms()
            want = 0 if self._stopping else self._allowed(now)
            paced = not self._stopping and self._failing and self._budget.wait_ms(now) > 0
            batch, released = list(self._done), list(self._released)
            try:
                reply, report = await self._step(batch, released, want)
            except REDIS_FAULTS as exc:
                # What finished is kept and recorded by the next step that gets through.
                await self._rest(self._faults.failed(exc))
                continue
            self._faults.ok()
            del self._done[: len(batch)]
            del self._released[: len(released)]
            _observe(self.sid, batch, report, self._target, reply.target)
            self._target = reply.target
            if batch:
                self._failing = not batch[-1][1].ok
            elif reply.target is not None:
                self._failing = reply.target.failing_since_ms is not None
            self._budget.spend(len(reply.claimed), failing=self._failing, now_ms=now)
            for claimed in reply.claimed:
                self._start(claimed)
            if self._stopping and self._sending:
                await self._wind_down()
                continue
            if paced and not self._done:
                # Out of attempts for now: due work may be waiting, so look again once
                # the budget allows one (a result or a poke may come first).
                await self._rest(self._budget.wait_ms(epoch_ms()) / 1000)
                continue
            if not self._sending and not self._done and not reply.claimed:
                return
            if not self._done:
                await self._wake.wait()

    async def _step(
        self, batch: list[tuple[Claimed, AttemptResult]], released: list[str], want: int
    ) -> tuple[StepReply, Report]:
        now = epoch_ms()
        report = self._report(batch, now)
        report.released = released
        return await self._steps.step(self.sid, report, now_ms=now, want=want), report

    def _report(self, batch: list[tuple[Claimed, AttemptResult]], now: int) -> Report:
        report = Report()
        target = self._target
        system = target is not None and target.kind is not TargetKind.WEBHOOK
        failing_since = target.failing_since_ms if target else None
        for claimed, result in batch:
            decision = decide(
                result,
                tries=claimed.tries,
                now_ms=now,
                failing_since_ms=failing_since,
                schedule=self._config.schedule,
                system=system,
                rng=self._config.rng,
            )
            report.finished.append(
                Finished(
                    claimed.delivery_id,
                    decision.status.value,
                    decision.next_due_ms,
                    result.attempt.model_dump_json(),
                )
            )
            report.health = "ok" if result.ok else "fail"
            if result.ok:
                failing_since = None
            elif failing_since is None:
                failing_since = now
            report.throttle_until_ms = max(
                report.throttle_until_ms, decision.throttle_until_ms or 0
            )
            if decision.disable and not report.disable:
                report.disable = decision.disable
                report.alerts = self._disable_alerts(self.sid, decision.disable, now)
        return report

    def _start(self, claimed: Claimed) -> None:
        target = self._target
        if target is None:
            return
        self._sending[claimed.delivery_id] = asyncio.create_task(self._send(target, claimed))

    async def _send(self, target: Target, claimed: Claimed) -> None:
        try:
            result = await self._sender.attempt(target, claimed)
        except asyncio.CancelledError:
            self._released.append(claimed.delivery_id)
            raise
        finally:
            self._sending.pop(claimed.delivery_id, None)
        self._done.append((claimed, result))
        self._failing = not result.ok
        if not result.ok:
            # One concise line per subscription every few seconds, never a traceback:
            # a subscriber that fails every call must not cost a log write per attempt.
            count = self._failures.failed(epoch_ms())
            if count:
                log.info(
                    "deliveries to %s failing: %d attempts failed, the last: %s",
                    self.sid,
                    count,
                    result.attempt.error or result.attempt.statusCode,
                    extra={"subscription_id": self.sid, "delivery_id": claimed.delivery_id},
                )
        self._wake.set()

    async def _wind_down(self) -> None:
        """Give in-flight sends the grace time, then cancel and hand back the rest."""
        tasks = list(self._sending.values())
        await asyncio.wait(tasks, timeout=self._config.stop_grace_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _rest(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            return
