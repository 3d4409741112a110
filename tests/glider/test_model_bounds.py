"""Glider's numbers and times at the model boundary: bounded, aware UTC, or refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from relay.core.clock import utc_now
from relay.core.listing import PortfolioRow
from relay.glider import models
from relay.glider.models import (
    AMOUNT_MAX_ADJUSTED,
    MAX_COUNT,
    Asset,
    Operation,
    PortfolioDetail,
    Positions,
    RebalanceAccepted,
    Schedule,
)
from relay.slack.blocks import slack_date

PROPERTY = settings(max_examples=400, deadline=None, derandomize=True, database=None)

# Any offset Python's datetime allows (strictly within a day either way).
OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
TIMES = st.one_of(
    st.datetimes().map(datetime.isoformat),  # naive
    st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), st.datetimes(), OFFSETS),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.datetimes().map(lambda d: d.date().isoformat()),
    st.integers(-(10**12), 10**12),  # Unix seconds or milliseconds, as pydantic reads them
)
AMOUNTS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.builds(
        lambda m, e: f"{m}E{e:+d}", st.integers(-(10**6), 10**6), st.integers(-(10**5), 10**5)
    ),
    st.floats(),
    st.integers(-(10**40), 10**40),
)


def _formatted_quickly(value: Decimal) -> None:
    """What the preview does with an amount comes to a line's worth of characters (the
    work of formatting grows with them: 1E+100000000 was a hundred million digits)."""
    shown = f"${value:,.2f}"
    assert len(shown) <= 2 * AMOUNT_MAX_ADJUSTED


@pytest.mark.parametrize(
    "wire",
    ["2026-11-22T12:00:00", "2026-11-22T12:00:00.000", "2026-11-22T12:00:00Z", "2026-11-22"],
)
def test_a_time_without_an_offset_is_read_as_utc(wire: str) -> None:
    """Glider documents UTC; an offset left out means UTC, not the relay's local time."""
    schedule = Schedule.model_validate({"status": "active", "nextDueAt": wire})
    assert schedule.next_due_at is not None
    assert schedule.next_due_at.tzinfo is UTC
    assert schedule.next_due_at.replace(hour=0) == datetime(2026, 11, 22, tzinfo=UTC)


def test_every_glider_time_is_aware_utc() -> None:
    """Each model's times come out aware, in UTC, the same instant Glider named."""
    naive, offset = "2026-11-22T12:00:00", "2026-11-22T14:00:00+02:00"
    noon = datetime(2026, 11, 22, 12, tzinfo=UTC)
    accepted = RebalanceAccepted.model_validate({"operationId": "op", "submittedAt": naive})
    operation = Operation.model_validate(
        {"operationId": "op", "portfolioId": "pf", "state": "running", "createdAt": naive}
        | {"updatedAt": offset, "finishedAt": offset}
    )
    detail = PortfolioDetail.model_validate(
        {"portfolioId": "pf", "createdAt": naive, "updatedAt": offset}
    )
    positions = Positions.model_validate({"fetchedAt": naive})
    times = [accepted.submitted_at, operation.created_at, operation.updated_at]
    times += [operation.finished_at, detail.created_at, detail.updated_at, positions.fetched_at]
    assert times == [noon] * len(times)
    assert all(t is not None and t.tzinfo is UTC for t in times)


def test_a_time_outside_what_utc_can_hold_is_refused() -> None:
    """Year 1 at +01:00 lies before datetime.min in UTC: malformed, not a crash later."""
    for wire in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        with pytest.raises(ValidationError, match="out of range"):
            Schedule.model_validate({"status": "active", "nextDueAt": wire})


@PROPERTY
@given(wire=TIMES)
def test_any_glider_time_is_aware_utc_or_refused(wire: Any) -> None:
    """Any time string or number: refused, or aware UTC that every reply builder can show."""
    try:
        detail = PortfolioDetail.model_validate(
            {"portfolioId": "pf", "schedule": {"status": "active", "nextDueAt": wire}}
        )
    except ValidationError:
        return
    when = detail.schedule.next_due_at if detail.schedule else None
    assert when is not None
    assert when.tzinfo is UTC
    now = utc_now()
    assert slack_date(when, now=now)  # what status, preview, list and Home show
    assert isinstance(when - now, timedelta)
    cached = PortfolioRow.model_validate_json(PortfolioRow.of(detail).model_dump_json())
    assert cached.next_due_at == when  # the cached list keeps it aware


@pytest.mark.parametrize(
    "wire",
    [
        *("1E+100000000", "-1E+999999999", "1e31", "1E-41", "0E-1000000", "0E+1000000000"),
        *("NaN", "sNaN", "Infinity", "-inf", 1e300, float("nan"), 10**40),
    ],
)
def test_an_absurd_amount_is_refused(wire: Any) -> None:
    """Valid JSON and a valid Decimal, but no amount: validation fails (MalformedResponse)."""
    with pytest.raises(ValidationError):
        Asset.model_validate({"valueUsd": wire})
    with pytest.raises(ValidationError):
        Positions.model_validate({"totalValueUsd": wire})


@pytest.mark.parametrize(
    "wire", ["0", "1234567.89", "0.000000000000000001", "9" * 30, "-12.5", 1500, 0.25, "1E+30"]
)
def test_real_amounts_are_kept_exactly(wire: Any) -> None:
    """Amounts a portfolio can hold, down to a token's 18 decimals, parse as they were sent."""
    asset = Asset.model_validate({"balance": wire, "priceUsd": wire, "valueUsd": wire})
    assert asset.value_usd == asset.balance == Decimal(str(wire))


@PROPERTY
@given(wire=AMOUNTS)
def test_any_amount_is_refused_or_cheap_to_show(wire: Any) -> None:
    """Any number Glider may send: refused, or formatted by the preview at once and short."""
    try:
        asset = Asset.model_validate({"balance": wire, "priceUsd": wire, "valueUsd": wire})
        total = Positions.model_validate({"totalValueUsd": wire}).total_value_usd
    except ValidationError:
        return
    for value in (asset.balance, asset.price_usd, asset.value_usd, total):
        assert value is not None
        _formatted_quickly(value)


@pytest.mark.parametrize("count", [-1, MAX_COUNT + 1, 2**64])
def test_counts_beyond_json_safe_integers_are_refused(count: int) -> None:
    """intervalMs and strategyVersion are counts: negative or past 2**53 is no count."""
    with pytest.raises(ValidationError):
        Schedule.model_validate({"status": "active", "intervalMs": count})
    with pytest.raises(ValidationError):
        PortfolioDetail.model_validate({"portfolioId": "pf", "strategyVersion": count})


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("Operation", {"operationId": "o" * 513, "portfolioId": "pf", "state": "running"}),
        ("Operation", {"operationId": "op", "portfolioId": "p" * 257, "state": "running"}),
        ("Operation", {"operationId": "", "portfolioId": "pf", "state": "running"}),
        ("PortfolioDetail", {"portfolioId": "p" * 257}),
    ],
)
def test_ids_beyond_their_bound_are_refused_not_cut(model: str, fields: dict[str, str]) -> None:
    """A cut id would name another portfolio or operation: a longer one is no id at all."""
    with pytest.raises(ValidationError):
        getattr(models, model).model_validate(fields)
