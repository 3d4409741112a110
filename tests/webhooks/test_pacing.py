"""Pacing a failing subscription (AttemptBudget) and its rate-limited failure log (FailureLog)."""

from __future__ import annotations

from relay.webhooks.policy import FAILING_CAP, AttemptBudget, FailureLog


def test_a_healthy_subscription_is_held_only_by_its_own_cap() -> None:
    budget = AttemptBudget(rate=5)
    for now in range(0, 1000, 10):
        assert budget.allowed(cap=10, in_flight=3, failing=False, now_ms=now) == 7
        budget.spend(7, failing=False, now_ms=now)
    assert budget.wait_ms(1000) == 0


def test_a_failing_subscription_gets_few_in_flight() -> None:
    budget = AttemptBudget(rate=100)
    assert budget.allowed(cap=10, in_flight=0, failing=True, now_ms=1) == FAILING_CAP
    assert budget.allowed(cap=10, in_flight=FAILING_CAP, failing=True, now_ms=1) == 0
    assert budget.allowed(cap=1, in_flight=0, failing=True, now_ms=1) == 1  # never above cap


def test_a_failing_subscription_is_paced_to_its_rate() -> None:
    budget = AttemptBudget(rate=20, failing_cap=1000)
    started = 0
    for now in range(0, 10_000, 5):  # ten seconds, looking every 5 ms
        allowed = budget.allowed(cap=1000, in_flight=0, failing=True, now_ms=now)
        budget.spend(allowed, failing=True, now_ms=now)
        started += allowed
    # the full bucket at the start plus the refill: 20 + 20/s * 10 s
    assert 200 <= started <= 220


def test_the_wait_is_until_one_attempt_is_allowed() -> None:
    budget = AttemptBudget(rate=10, failing_cap=100)
    budget.spend(
        budget.allowed(cap=100, in_flight=0, failing=True, now_ms=0), failing=True, now_ms=0
    )
    assert budget.allowed(cap=100, in_flight=0, failing=True, now_ms=0) == 0
    wait = budget.wait_ms(0)
    assert 90 <= wait <= 101
    assert budget.allowed(cap=100, in_flight=0, failing=True, now_ms=wait) == 1


def test_the_failure_log_speaks_once_per_period_with_the_count() -> None:
    log = FailureLog(every_ms=1000)
    assert log.failed(0) == 1  # the first failure is logged at once
    assert [log.failed(t) for t in range(1, 1000, 100)] == [0] * 10
    assert log.failed(1000) == 11  # the ten held back and this one
    assert log.failed(1500) == 0
