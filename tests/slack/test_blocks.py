"""Escaping and time rendering for Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

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
        (-90, "1 min ago"),
        (7260, "in 2 h 1 min"),
        (-2 * 86400 - 3600, "2 d 1 h ago"),
    ],
)
def test_relative(seconds: int, text: str) -> None:
    """Relative times are coarse and signed correctly."""
    assert relative(seconds) == text


def test_slack_date_has_token_fallback_and_relative() -> None:
    """Absolute time is a Slack date token with an ISO fallback, then the relative time."""
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    text = slack_date(now + timedelta(minutes=5), now=now)
    assert text.startswith(f"<!date^{int((now + timedelta(minutes=5)).timestamp())}^")
    assert "|2026-11-22 12:05 UTC>" in text
    assert text.endswith("(in 5 min)")
