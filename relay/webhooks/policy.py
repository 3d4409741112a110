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
