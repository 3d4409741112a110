"""Slack's v0 signature check over raw bytes: yes or no for any header value, never an error."""

from __future__ import annotations

import time

import pytest

from bot.signature import (
    BAD_TIMESTAMP,
    MISMATCH,
    PROBLEMS,
    STALE,
    UNSIGNED,
    WINDOW_S,
    is_slack_signed,
    is_ssl_check,
    signature_problem,
)
from tests.fixtures.slack import SIGNING_SECRET, slack_signature

SECRET = SIGNING_SECRET.encode()
BODY = "command=%2Frebalance&text=pf_1"


def test_a_slack_signed_body_passes() -> None:
    """The fixture's v0 signature (what Slack sends) verifies within the window."""
    now = int(time.time())
    assert is_slack_signed(SECRET, BODY.encode(), str(now), slack_signature(BODY, now), now=now)


@pytest.mark.parametrize(
    "timestamp", [None, "", "abc", "1e3", " 12", "-1", "\u0661\u0662", "9" * 5000, "0x10"]
)
def test_junk_timestamps_are_refused(timestamp: str | None) -> None:
    """A missing or non-integer timestamp is a plain no (Bolt's int() raised on these)."""
    now = int(time.time())
    assert not is_slack_signed(SECRET, BODY.encode(), timestamp, "v0=00", now=now)


def test_stale_wrong_or_missing_signatures_are_refused() -> None:
    """Outside the 5-minute window, another body, another secret, or no signature: refused."""
    now = int(time.time())
    old = now - WINDOW_S - 1
    body = BODY.encode()
    assert not is_slack_signed(SECRET, body, str(old), slack_signature(BODY, old), now=now)
    assert not is_slack_signed(
        SECRET, body + b"&x=1", str(now), slack_signature(BODY, now), now=now
    )
    other = slack_signature(BODY, now, secret="another-secret")
    assert not is_slack_signed(SECRET, body, str(now), other, now=now)
    assert not is_slack_signed(SECRET, body, str(now), None, now=now)


def test_any_bytes_and_header_text_are_safe() -> None:
    """Invalid UTF-8 bodies and non-ASCII signatures give False, not an exception."""
    now = int(time.time())
    assert not is_slack_signed(SECRET, b"\xff\xfe{", str(now), "v0=\u00e9\udc80", now=now)


def test_ssl_check_is_recognised_only_exactly() -> None:
    """Only ssl_check=1 is Slack's unsigned probe."""
    assert is_ssl_check(b"ssl_check=1&token=legacy")
    assert not is_ssl_check(b"ssl_check=0")
    assert not is_ssl_check(b"ssl_check=1&ssl_check=1")
    assert not is_ssl_check(b"\xff")


def test_signature_problem_names_what_is_wrong() -> None:
    """Each refusal has its label (for the log line and the metric); a good one has none."""
    now = 1_700_000_000
    body = BODY.encode()
    good = slack_signature(BODY, now)
    assert signature_problem(SECRET, body, str(now), good, now=now) is None
    assert signature_problem(SECRET, body, None, good, now=now) == UNSIGNED
    assert signature_problem(SECRET, body, "12x", good, now=now) == BAD_TIMESTAMP
    assert signature_problem(SECRET, body, str(now), good, now=now + WINDOW_S + 1) == STALE
    assert signature_problem(SECRET, body, str(now), "v0=00", now=now) == MISMATCH
    assert set(PROBLEMS) == {UNSIGNED, BAD_TIMESTAMP, STALE, MISMATCH}
