"""Retry schedule and the after-attempt decision (pure)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from relay.webhooks.models import Attempt, DeliveryStatus
from relay.webhooks.policy import (
    FAILING,
    FAILING_DISABLE_MS,
    GONE,
    AttemptResult,
    Decision,
    decide,
)
from relay.webhooks.schedule import DEFAULT_DELAYS_S, RetrySchedule

NOW = 1_800_000_000_000


def _result(
    code: int | None, *, error: str | None = None, retry_after: float | None = None
) -> AttemptResult:
    attempt = Attempt(at=datetime.now(UTC), statusCode=code, latencyMs=5, error=error)
    return AttemptResult(attempt, retry_after)


def _decide(
    result: AttemptResult,
    tries: int = 0,
    *,
    failing_since_ms: int | None = None,
    system: bool = False,
) -> Decision:
    return decide(
        result,
        tries=tries,
        now_ms=NOW,
        failing_since_ms=failing_since_ms,
        schedule=RetrySchedule(),
        system=system,
        rng=random.Random(1),
    )


def test_default_schedule_spans_more_than_a_day_even_with_jitter() -> None:
    """Eight attempts whose shortest possible span still exceeds 24 hours."""
    schedule = RetrySchedule()
    assert schedule.attempts == 8
    assert DEFAULT_DELAYS_S[:3] == (0, 5, 300)
    assert schedule.minimum_span_s() > 24 * 3600


def test_jitter_stays_within_bounds() -> None:
    """Each delay lands within +/-10 % of its nominal value."""
    schedule = RetrySchedule()
    rng = random.Random(7)
    for tries in range(1, schedule.attempts):
        nominal = DEFAULT_DELAYS_S[tries]
        for _ in range(50):
            delay = schedule.delay_after(tries, rng=rng)
            assert delay is not None
            assert nominal * 0.9 <= delay <= nominal * 1.1


def test_no_delay_after_last_attempt() -> None:
    """After the last attempt there is no next one."""
    assert RetrySchedule(delays_s=(0, 1)).delay_after(2) is None


def test_retry_after_only_pushes_later_and_is_capped() -> None:
    """Retry-After lengthens a short wait, never shortens one, and is capped at 6 h."""
    schedule = RetrySchedule(jitter=0)
    assert schedule.delay_after(1, retry_after_s=60) == 60
    assert schedule.delay_after(2, retry_after_s=1) == 300
    assert schedule.delay_after(1, retry_after_s=10**9) == 6 * 3600


def test_bad_schedules_are_refused() -> None:
    """An empty schedule or a jitter of 1 or more is a configuration error."""
    with pytest.raises(ValueError, match="at least one"):
        RetrySchedule(delays_s=())
    with pytest.raises(ValueError, match="jitter"):
        RetrySchedule(jitter=1.0)


def test_2xx_succeeds() -> None:
    """A 2xx answer with no error is success."""
    decision = _decide(_result(204))
    assert decision.status is DeliveryStatus.SUCCEEDED


def test_failure_schedules_next_attempt() -> None:
    """A 500 on the first try is retried about 5 s later."""
    decision = _decide(_result(500))
    assert decision.status is DeliveryStatus.FAILED
    assert decision.next_due_ms is not None
    assert NOW + 4500 <= decision.next_due_ms <= NOW + 5500


def test_last_failure_is_dead() -> None:
    """A failure on the last scheduled attempt makes the delivery dead."""
    decision = _decide(_result(None, error="timed out"), tries=7)
    assert decision.status is DeliveryStatus.DEAD


def test_redirect_and_slack_error_are_failures() -> None:
    """3xx is not success; nor is a 200 that carries an error (Slack's ok: false)."""
    assert _decide(_result(301)).status is DeliveryStatus.FAILED
    assert _decide(_result(200, error="Slack error: x")).status is DeliveryStatus.FAILED


def test_410_kills_and_disables_webhooks_but_not_system_targets() -> None:
    """410 Gone disables a subscription; an on-call target just retries."""
    decision = _decide(_result(410))
    assert decision.status is DeliveryStatus.DEAD
    assert decision.disable == GONE
    system = _decide(_result(410), system=True)
    assert system.status is DeliveryStatus.FAILED
    assert system.disable is None


def test_429_retry_after_throttles_the_subscription() -> None:
    """A 429 with Retry-After holds the whole subscription and delays this retry."""
    decision = _decide(_result(429, retry_after=120))
    assert decision.throttle_until_ms == NOW + 120_000
    assert decision.next_due_ms is not None
    assert decision.next_due_ms >= NOW + 120_000


def test_retry_after_ignored_on_other_statuses() -> None:
    """Only 429 and 503 get their Retry-After honoured."""
    decision = _decide(_result(500, retry_after=3600))
    assert decision.throttle_until_ms is None
    assert decision.next_due_ms is not None
    assert decision.next_due_ms < NOW + 3_600_000


def test_failing_five_days_disables() -> None:
    """A failure after five days of failures kills the delivery and disables the subscription."""
    decision = _decide(_result(500), failing_since_ms=NOW - FAILING_DISABLE_MS)
    assert decision.status is DeliveryStatus.DEAD
    assert decision.disable == FAILING
    recent = _decide(_result(500), failing_since_ms=NOW - FAILING_DISABLE_MS + 1)
    assert recent.disable is None
