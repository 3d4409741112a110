"""Pure retry arithmetic."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.core.backoff import backoff_delay, parse_retry_after, retry_wait


def test_backoff_grows_exponentially_without_jitter() -> None:
    """With no jitter the delays double from the base until the cap."""
    delays = [backoff_delay(n, base=1, cap=10, jitter=0) for n in range(1, 7)]
    assert delays == [1, 2, 4, 8, 10, 10]


@given(attempt=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_backoff_stays_within_zero_and_cap(attempt: int, seed: int) -> None:
    """Full jitter never goes below zero nor above the cap, however many attempts."""
    delay = backoff_delay(attempt, base=0.5, cap=30, rng=random.Random(seed))
    assert 0 <= delay <= 30


def test_backoff_rejects_attempt_zero() -> None:
    """Attempts are counted from 1."""
    with pytest.raises(ValueError, match="1-based"):
        backoff_delay(0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("", None),
        ("soon", None),
        (None, None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    """Delta-seconds parse; garbage and absence give None; negatives clamp to zero."""
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    """An HTTP-date counts from now."""
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Sun, 22 Nov 2026 12:00:42 GMT", now=now) == 42.0


def test_retry_after_wins_over_backoff() -> None:
    """A server's Retry-After overrides the computed wait, even when longer than the cap."""
    assert retry_wait(1, 120.0, cap=5) == 120.0
    assert retry_wait(3, None, cap=5, rng=random.Random(1)) <= 5
