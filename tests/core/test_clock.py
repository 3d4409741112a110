"""The one time module: epoch milliseconds and the wire's ISO form agree both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from relay.core.clock import epoch_ms, from_ms, iso_ms, to_ms, utc_now, utc_now_ms


def test_ms_round_trip() -> None:
    """A time at millisecond precision survives epoch ms and back."""
    moment = datetime(2026, 4, 17, 12, 0, 0, 123_000, tzinfo=UTC)
    assert to_ms(moment) == 1776427200123
    assert from_ms(to_ms(moment)) == moment


def test_iso_ms_is_utc_with_millis_and_z() -> None:
    """Any zone is shown in UTC, microseconds cut to milliseconds, with a Z."""
    moment = datetime(2026, 4, 17, 14, 0, 0, 123_999, tzinfo=timezone(timedelta(hours=2)))
    assert iso_ms(moment) == "2026-04-17T12:00:00.123Z"


def test_now_functions_are_aware_and_agree() -> None:
    """The clocks are UTC-aware; the ms form has no sub-millisecond part."""
    before = epoch_ms()
    now, now_ms = utc_now(), utc_now_ms()
    after = epoch_ms()
    assert now.tzinfo is UTC
    assert now_ms.tzinfo is UTC
    assert now_ms.microsecond % 1000 == 0
    assert before <= to_ms(now_ms) <= after
