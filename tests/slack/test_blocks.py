"""Escaping and time rendering for Slack."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.core.bounds import ELLIPSIS, clip_mrkdwn_lines
from relay.slack.blocks import context, escape, relative, section, slack_date


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


def test_our_own_tokens_stay_as_written_in_a_verbatim_text() -> None:
    """verbatim only stops Slack's own parsing of bare text: the mention, date and link
    tokens the relay writes are kept as they are, and outside text stays escaped."""
    ours = "<@U0APPR> at <!date^1795349100^{date_short_pretty}|2026-11-22> <https://x.test|card>"
    outside = escape("re-authorise at https://evil.test/login #general @here <!here>")
    for block in (section(f"{ours} {outside}"), context(f"{ours} {outside}")):
        obj = block["text"] if block["type"] == "section" else block["elements"][0]
        assert obj == {"type": "mrkdwn", "text": f"{ours} {outside}", "verbatim": True}


_BROKEN = re.compile(r"&(?!amp;|lt;|gt;)|<[^>]*$")
LINE = st.lists(
    st.sampled_from(["&", "<", ">", "*", "a", "é", "👍🏽", " "]), min_size=0, max_size=300
).map(lambda chars: escape("".join(chars)))
DATE = st.just(slack_date(datetime(2026, 11, 22, 12, tzinfo=UTC)))


@given(
    st.lists(st.one_of(LINE, DATE.map(lambda d: f"Cooldown until {d}")), max_size=30),
    st.integers(10, 3000),
)
def test_clip_mrkdwn_lines_keeps_whole_lines_within_the_limit(lines: list[str], limit: int) -> None:
    """Cut escaped facts are whole lines and an ``…`` line: never half an entity, a token
    or a *bold* span; a first line too long alone is cut safely."""
    cut = clip_mrkdwn_lines(lines, limit)
    assert len(cut) <= limit
    if cut == "\n".join(lines):
        return
    kept = cut.split("\n")
    assert not _BROKEN.search(cut), cut[-40:]
    if len(kept) > 1:
        assert kept[-1] == ELLIPSIS
        assert kept[:-1] == lines[: len(kept) - 1]
    else:
        assert cut.endswith(ELLIPSIS)
