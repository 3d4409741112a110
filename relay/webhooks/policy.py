"""What happens after an attempt: the delivery's next status, and the subscription's health.

Pure: the attempt's result, how many tries came before, the clock and the schedule in;
a :class:`Decision` out. The Redis side records it without second-guessing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from relay.webhooks.models import Attempt, DeliveryStatus
from relay.webhooks.schedule import RetrySchedule

FAILING_DISABLE_MS = 5 * 24 * 3600 * 1000  # failing this long without a success: disabled
THROTTLE_STATUSES = frozenset({429, 503})
GONE = "gone"  # disabled because the endpoint answered 410 Gone
FAILING = "failing"  # disabled because every attempt failed for FAILING_DISABLE_MS


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What the sender observed; ``retry_after_s`` is the parsed header on 429/503.

    ``final``: the receiver said the message itself is wrong (PagerDuty's 400), so no
    retry can succeed; the delivery is dead at once.
    """

    attempt: Attempt
    retry_after_s: float | None = None
    final: bool = False

    @property
    def ok(self) -> bool:
        code = self.attempt.statusCode
        return code is not None and 200 <= code < 300 and self.attempt.error is None


@dataclass(frozen=True, slots=True)
class Decision:
    status: DeliveryStatus
    next_due_ms: int | None = None  # when FAILED: the next attempt
    throttle_until_ms: int | None = None  # hold the whole subscription until then
    disable: str | None = None  # GONE or FAILING: disable the subscription


def decide(
    result: AttemptResult,
    *,
    tries: int,
    now_ms: int,
    failing_since_ms: int | None,
    schedule: RetrySchedule,
    system: bool = False,
    rng: random.Random | None = None,
) -> Decision:
    """The outcome of attempt number ``tries + 1``.

    ``failing_since_ms`` is when the subscription's current run of failures began
    (None after a success). System targets (on-call) are never disabled.
    """
    if result.ok:
        return Decision(DeliveryStatus.SUCCEEDED)
    if result.final:
        return Decision(DeliveryStatus.DEAD)
    code = result.attempt.statusCode
    if code == 410 and not system:
        return Decision(DeliveryStatus.DEAD, disable=GONE)
    retry_after = result.retry_after_s if code in THROTTLE_STATUSES else None
    throttle = None
    if retry_after is not None:
        throttle = now_ms + int(min(retry_after, schedule.max_retry_after_s) * 1000)
    disable = None
    if (
        not system
        and failing_since_ms is not None
        and now_ms - failing_since_ms >= FAILING_DISABLE_MS
    ):
        disable = FAILING
    delay = schedule.delay_after(tries + 1, retry_after_s=retry_after, rng=rng)
    if delay is None or disable is not None:
        return Decision(DeliveryStatus.DEAD, throttle_until_ms=throttle, disable=disable)
    return Decision(
        DeliveryStatus.FAILED,
        next_due_ms=now_ms + int(delay * 1000),
        throttle_until_ms=throttle,
    )


# --- pacing a failing subscription -------------------------------------------------

FAILING_CAP = 2  # attempts in flight for a subscription whose last attempts failed
FAILING_RATE = 5.0  # attempts per second for such a subscription (its share of the sender)
LOG_EVERY_MS = 10_000  # one "failing" log line per subscription per this much time


@dataclass(slots=True)
class AttemptBudget:
    """How much of the sender one subscription may take while its attempts fail.

    Pure (the clock comes in): a healthy subscription is held only by its own cap;
    a failing one gets at most ``failing_cap`` attempts in flight and ``rate``
    attempts per second (a token bucket of ``rate`` tokens, refilled continuously), so
    its retries cannot crowd out healthy subscriptions. Its first success lifts both.
    """

    rate: float = FAILING_RATE
    failing_cap: int = FAILING_CAP
    tokens: float = FAILING_RATE
    at_ms: int = 0

    def __post_init__(self) -> None:
        self.tokens = min(self.tokens, self.rate)  # a bucket holds at most a second's worth

    def _refill(self, now_ms: int) -> None:
        if now_ms > self.at_ms:
            self.tokens = min(self.rate, self.tokens + (now_ms - self.at_ms) * self.rate / 1000)
            self.at_ms = now_ms

    def allowed(self, *, cap: int, in_flight: int, failing: bool, now_ms: int) -> int:
        """How many more attempts may start now."""
        if not failing:
            return max(0, cap - in_flight)
        self._refill(now_ms)
        room = min(cap, self.failing_cap) - in_flight
        return max(0, min(room, int(self.tokens)))

    def spend(self, attempts: int, *, failing: bool, now_ms: int) -> None:
        """``attempts`` started now (counted only while failing)."""
        if failing:
            self._refill(now_ms)
            self.tokens -= attempts

    def wait_ms(self, now_ms: int) -> int:
        """How long until the next attempt may start (0: now)."""
        self._refill(now_ms)
        if self.tokens >= 1:
            return 0
        return int((1 - self.tokens) * 1000 / self.rate) + 1


@dataclass(slots=True)
class FailureLog:
    """Rate-limits the per-attempt failure log: one line per ``every_ms`` per subscription,
    carrying how many failures it stands for. Pure: the clock comes in."""

    every_ms: int = LOG_EVERY_MS
    last_ms: int | None = None
    pending: int = 0

    def failed(self, now_ms: int) -> int:
        """Note one failure; the count to log now (0: stay quiet)."""
        self.pending += 1
        if self.last_ms is not None and now_ms - self.last_ms < self.every_ms:
            return 0
        count, self.pending, self.last_ms = self.pending, 0, now_ms
        return count
