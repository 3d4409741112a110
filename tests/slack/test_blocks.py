"""Escaping and time rendering for Slack."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.slack.blocks import escape, relative, slack_date


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<https://evil.test|click>", "&lt;https://evil.test|click&gt;"),
        ("a & b", "a &amp; b"),
        ("&lt;", "&amp;lt;"),
    ],
)
def test_escape_neutralises_control_sequences(raw: str, escaped: str) -> None:
    """Mentions, links and entities from users or Glider become plain text."""
    assert escape(raw) == escaped


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "in 30 s"),
        (119, "in 2 min"),
        (120, "in 2 min"),
        (3600, "in 60 min"),
        (3601, "in 1 h 1 min"),
        (-90, "2 min ago"),
        (7260, "in 2 h 1 min"),
        (-2 * 86400 - 3600, "2 d 1 h ago"),
    ],
)
def test_relative(seconds: int, text: str) -> None:
    """Relative times are coarse, rounded up and signed correctly."""
    assert relative(seconds) == text


_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def _shown_seconds(text: str) -> int:
    """The duration a relative time shows, back in seconds."""
    return sum(int(n) * _UNITS[unit] for n, unit in re.findall(r"(\d+) (s|min|h|d)\b", text))


@given(st.integers(min_value=-400 * 86400, max_value=400 * 86400))
def test_relative_never_understates(seconds: int) -> None:
    """The shown duration is at least the real one, and less than one shown unit more."""
    text = relative(seconds)
    shown = _shown_seconds(text)
    assert shown >= abs(seconds)
    unit = 1 if abs(seconds) < 60 else 60 if abs(seconds) < 86400 else 3600
    assert shown - abs(seconds) < unit
    assert text.startswith("in ") if seconds > 0 else text.endswith(" ago")


@given(st.floats(min_value=-86400, max_value=86400, allow_nan=False))
def test_slack_date_never_understates_a_fraction(offset: float) -> None:
    """A wait of 119.2 s is not shown as 119 s: fractions round away from zero too."""
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    text = slack_date(now + timedelta(seconds=offset), now=now)
    relative_part = text.rsplit("(", 1)[1]
    assert _shown_seconds(relative_part) >= abs(timedelta(seconds=offset).total_seconds())


def test_slack_date_has_token_fallback_and_relative() -> None:
    """Absolute time is a Slack date token with an ISO fallback, then the relative time."""
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    text = slack_date(now + timedelta(minutes=5), now=now)
    assert text.startswith(f"<!date^{int((now + timedelta(minutes=5)).timestamp())}^")
    assert "|2026-11-22 12:05 UTC>" in text
    assert text.endswith("(in 5 min)")
