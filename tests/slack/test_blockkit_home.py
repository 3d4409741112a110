"""The App Home view and the /rebalance list reply are valid Block Kit for any input.

Portfolio names and ids from Glider, request records and approvals from the store:
arbitrary, hostile and huge, held to Slack's rules for a Home tab view
(:func:`tests.fixtures.blockkit.view_errors`, ``slack_sdk.models.views.View``) and
for a message, with every cut outside an escape and no injected token.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot import home_messages
from bot.home_messages import ApprovalLine, HomeData, ListView
from bot.messages import Reply
from relay.core.listing import Listing, PortfolioRow, page_of
from relay.glider.models import PortfolioDetail
from tests.fixtures.blockkit import view_errors
from tests.slack.test_blockkit_messages import (
    CHECKS,
    MAYBE,
    NOW,
    TEXT,
    Draw,
    assert_valid,
    assert_verbatim,
    record,
)


def row(draw: Draw) -> PortfolioRow:
    """A row as it comes from Glider's JSON, through the model that bounds it."""
    schedule = (
        {"status": draw(TEXT), "frequency": draw(MAYBE), "nextDueAt": NOW.isoformat()}
        if draw(st.booleans())
        else None
    )
    wire = {"portfolioId": draw(TEXT)[:200] or "p", "portfolioName": draw(MAYBE)}
    if schedule is not None:
        wire["schedule"] = schedule
    return PortfolioRow.of(PortfolioDetail.model_validate(wire))


def page(draw: Draw, size: int) -> Any:
    rows = tuple(row(draw) for _ in range(draw(st.integers(0, 3))))
    padding = draw(st.integers(0, 600))
    listing = Listing(rows=rows * (1 + padding // max(1, len(rows))) if rows else ())
    return page_of(listing, draw(st.integers(0, 1200)), size)


def _latest(draw: Draw, data_page: Any) -> dict[str, Any]:
    return {r.portfolio_id: record(draw) for r in data_page.rows if draw(st.booleans())}


def home(draw: Draw) -> HomeData:
    shown = page(draw, 20) if draw(st.booleans()) else None
    return HomeData(
        user_id=draw(TEXT),
        now=NOW,
        page=shown,
        glider_note=draw(MAYBE),
        latest=_latest(draw, shown) if shown else {},
        approvals=tuple(
            ApprovalLine(
                portfolio_id=draw(TEXT),
                request_id=draw(TEXT),
                requested_by=draw(TEXT),
                expires_at=NOW + timedelta(minutes=5),
                mine=draw(st.booleans()),
            )
            for _ in range(draw(st.integers(0, 8)))
        ),
        approvals_cut=draw(st.booleans()),
        commands=tuple(record(draw) for _ in range(draw(st.integers(0, 6)))),
        store_note=draw(MAYBE),
        refused=draw(st.booleans()),
    )


def _list_view(draw: Draw) -> ListView:
    shown = page(draw, 10) if draw(st.booleans()) else None
    latest = _latest(draw, shown) if shown else {}
    return ListView(now=NOW, page=shown, glider_note=draw(MAYBE), latest=latest)


# Each public builder of bot/home_messages.py, with how to call it from drawn data.
VIEWS: dict[str, Callable[[Draw], dict[str, Any]]] = {
    "home_view": lambda d: home_messages.home_view(home(d)),
}
REPLIES: dict[str, Callable[[Draw], Reply]] = {
    "portfolio_list": lambda d: home_messages.portfolio_list(_list_view(d)),
    "list_refused": lambda d: home_messages.list_refused(),
}


def test_every_home_builder_is_covered() -> None:
    """A new view or reply of bot/home_messages.py must join VIEWS or REPLIES."""
    builders = {
        name
        for name, fn in inspect.getmembers(home_messages, inspect.isfunction)
        if fn.__module__ == home_messages.__name__
        and not name.startswith("_")
        and inspect.signature(fn).return_annotation in ("Reply", "dict[str, Any]")
    }
    assert builders == set(VIEWS) | set(REPLIES)


@CHECKS
@given(st.data())
def test_the_home_view_is_valid_for_any_input(data: st.DataObject) -> None:
    """Any page, records, approvals and notes: a Home tab Slack publishes."""
    view = VIEWS["home_view"](data.draw)
    assert view_errors(view) == []
    assert_verbatim(view["blocks"])  # every mrkdwn text object of the view
    # The message rules (escapes, no injected token) hold for its texts too.
    assert_valid({"text": "home", "blocks": view["blocks"][:50]})
    assert_valid({"text": "home", "blocks": view["blocks"][50:] or [view["blocks"][0]]})


@CHECKS
@given(st.data(), st.sampled_from(sorted(REPLIES)))
def test_the_list_reply_is_valid_for_any_input(data: st.DataObject, kind: str) -> None:
    """/rebalance list: valid Block Kit for any Glider text."""
    assert_valid(REPLIES[kind](data.draw).payload())


def test_a_full_page_of_huge_rows_stays_within_100_blocks() -> None:
    """20 rows at every limit: the view still fits (one block per portfolio)."""
    huge = PortfolioRow(portfolio_id="&" * 200, name="<" * 200, status="s" * 200)
    data = HomeData(user_id="U1", now=NOW, page=page_of(Listing(rows=(huge,) * 1000), 0, 20))
    view = home_messages.home_view(data)
    assert view_errors(view) == []
    assert_verbatim(view["blocks"])
    assert "Portfolios 1-20 of 1000 · 980 more not shown" in str(view["blocks"])
