"""Poll schedule: first at 2 s, then ~10% of age within bounds, Retry-After floor, deadline."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from relay.core.poll_policy import PollPolicy

POLICY = PollPolicy()


def test_first_poll_two_seconds_after_submit() -> None:
    """A just-submitted operation is polled 2 s later."""
    assert POLICY.delay(0) == 2.0


def test_interval_grows_with_age_and_is_capped() -> None:
    """Young operations poll every 2 s, older ones every ~10% of age, never over 60 s."""
    no_jitter = PollPolicy(jitter=0)
    assert no_jitter.delay(5) == 2.0
    assert no_jitter.delay(100) == 10.0
    assert no_jitter.delay(300) == 30.0
    assert no_jitter.delay(3600) == 60.0


def test_retry_after_is_a_floor() -> None:
    """Glider's Retry-After delays the poll even when the policy would go sooner."""
    assert POLICY.delay(5, retry_after_s=30) == 30
    assert PollPolicy(jitter=0).delay(1000, retry_after_s=5) == 60


def test_deadline_is_looked_at_once_then_stuck() -> None:
    """The last poll lands exactly on the deadline; from then on the operation is stuck."""
    policy = PollPolicy(deadline_s=100, jitter=0)
    assert policy.next_age(95) == 100
    assert not policy.is_stuck(99.9)
    assert policy.is_stuck(100)


@given(age=st.floats(min_value=0.001, max_value=50_000), seed=st.integers(0, 1000))
def test_jitter_only_shortens_within_bounds(age: float, seed: int) -> None:
    """With jitter an interval stays in [min(2 s, base), base] where base is the plain policy."""
    base = PollPolicy(jitter=0).delay(age)
    jittered = POLICY.delay(age, rng=random.Random(seed))
    assert min(2.0, base) <= jittered <= base
    assert jittered >= 0.9 * base


@given(duration=st.floats(min_value=0.5, max_value=20_000), seed=st.integers(0, 1000))
def test_end_is_noticed_within_max_2s_or_10_percent(duration: float, seed: int) -> None:
    """Walking the schedule, the first poll after an operation ends is at most
    max(2 s, 10% of its duration) late (the 60 s cap keeps long ones even tighter)."""
    rng = random.Random(seed)
    age = 0.0
    while age < duration:
        age = POLICY.next_age(age, rng=rng)
    assert age - duration <= max(2.0, 0.1 * duration) + 1e-9
