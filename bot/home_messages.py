"""The App Home view and the ``/rebalance list`` reply: pure functions of their data.

Both show one page of Glider's portfolios (relay/core/listing.py) with schedule
status, next due and the last tracked outcome, and say how many are not shown.
The Home tab adds the user's pending approvals, their latest commands and the
paging buttons (``home.previous`` / ``home.next``, value: the page's offset).
Everything from Glider, users or the store is escaped and cut to Slack's limits;
a view never exceeds :data:`VIEW_BLOCKS`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.messages import Reply
from relay.core.bounds import clip
from relay.core.listing import Page, PortfolioRow
from relay.core.records import RequestRecord
from relay.slack.blocks import Block, context, escape, header, section, slack_date

VIEW_BLOCKS = 100  # Slack's maximum for a Home tab view
BUTTON_TEXT_CHARS = 75
PREVIOUS, NEXT = "home.previous", "home.next"
ACTIONS = (PREVIOUS, NEXT)
SHOWN_APPROVALS = 5
SHOWN_COMMANDS = 5
_ERROR_CHARS = 200  # of a row's last error (cut before escaping: never inside an entity)
NOT_ALLOWED = (
    ":no_entry: You may not read any portfolio through glider-relay "
    "(setting `BOT_ALLOWED_USERS`, or the roles of the access policy)."
)


class ApprovalLine(BaseModel):
    """A pending approval the user asked for (``mine``) or may decide."""

    model_config = ConfigDict(frozen=True)

    portfolio_id: str
    request_id: str
    requested_by: str  # the requester's Slack user id (or name)
    expires_at: datetime
    mine: bool


class HomeData(BaseModel):
    """Everything the Home tab shows; a note explains each part that is missing."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    now: datetime
    page: Page | None = None  # None: no list (Glider failed, or the user may see none)
    glider_note: str | None = None
    latest: dict[str, RequestRecord] = {}
    approvals: tuple[ApprovalLine, ...] = ()
    approvals_cut: bool = False  # only the soonest due were read: more may be the user's
    commands: tuple[RequestRecord, ...] = ()
    store_note: str | None = None
    refused: bool = False


def _code(value: str) -> str:
    quoted = escape(value.replace("`", "'"))
    return f"`{quoted}`"


def _when(value: datetime | None, now: datetime) -> str:
    return slack_date(value, now=now) if value is not None else "never"


def _outcome(record: RequestRecord | None, now: datetime) -> str:
    if record is None:
        return "Last tracked: none"
    line = (
        f"Last tracked: {escape(record.action.value)} *{escape(record.state.value)}* "
        f"{_when(record.updated_at, now)}"
    )
    error = record.error_message or record.error_code
    return line + (f" ({escape(clip(error, _ERROR_CHARS))})" if error else "")


def row_text(row: PortfolioRow, record: RequestRecord | None, now: datetime) -> str:
    """One portfolio: name and id, schedule, next due, the last tracked outcome."""
    title = (
        f"*{escape(row.name)}* {_code(row.portfolio_id)}" if row.name else _code(row.portfolio_id)
    )
    if row.status is None:
        schedule = "Schedule: none"
    else:
        frequency = f" ({escape(row.frequency)})" if row.frequency else ""
        schedule = (
            f"Schedule: *{escape(row.status)}*{frequency} · Next due: {_when(row.next_due_at, now)}"
        )
    return f"{title}\n{schedule}\n{_outcome(record, now)}"


def page_summary(page: Page) -> str:
    """``Portfolios 21-40 of 500 · 480 more not shown``, and whether Glider's list was cut."""
    if page.total == 0:
        return "Glider lists no portfolio you may see."
    text = f"Portfolios {page.first}-{page.last} of {page.total}"
    if page.not_shown:
        text += f" · {page.not_shown} more not shown"
    if page.cut:
        text += " · Glider lists more; only the newest are counted here"
    return text


def _rows(page: Page, latest: dict[str, RequestRecord], now: datetime) -> list[Block]:
    return [section(row_text(r, latest.get(r.portfolio_id), now)) for r in page.rows]


def _button(text: str, action_id: str, offset: int) -> Block:
    label = {"type": "plain_text", "text": clip(text, BUTTON_TEXT_CHARS)}
    return {"type": "button", "text": label, "action_id": action_id, "value": str(offset)}


def _paging(page: Page) -> list[Block]:
    buttons = []
    if page.previous_offset is not None:
        buttons.append(_button("Previous page", PREVIOUS, page.previous_offset))
    if page.next_offset is not None:
        buttons.append(_button("Next page", NEXT, page.next_offset))
    return [{"type": "actions", "block_id": "home.paging", "elements": buttons}] if buttons else []


def _approvals(data: HomeData) -> list[Block]:
    if not data.approvals and not data.approvals_cut:
        return [section("*Pending approvals:* none")]
    lines = []
    for a in data.approvals[:SHOWN_APPROVALS]:
        who = "yours, awaiting a second person" if a.mine else f"from {_code(a.requested_by)}"
        lines.append(
            f"• Rebalance of {_code(a.portfolio_id)} ({who}), request {_code(a.request_id)}, "
            f"expires {_when(a.expires_at, data.now)}"
        )
    more = len(data.approvals) - SHOWN_APPROVALS
    if more > 0:
        lines.append(f"… and {more} more")
    if data.approvals_cut:
        lines.append("… and perhaps more: only the soonest due were read")
    return [section("*Pending approvals:*\n" + "\n".join(lines))]


def _commands(data: HomeData) -> list[Block]:
    if data.store_note:
        return [section(f":warning: {escape(data.store_note)}")]
    if not data.commands:
        return [section("*Your latest commands:* none")]
    lines = [
        f"• {escape(r.action.value)} {_code(r.portfolio_id)}: *{escape(r.state.value)}* "
        f"({_code(r.request_id)}, {_when(r.accepted_at, data.now)})"
        for r in data.commands[:SHOWN_COMMANDS]
    ]
    return [section("*Your latest commands:*\n" + "\n".join(lines))]


def _view(blocks: list[Block]) -> dict[str, Any]:
    return {"type": "home", "callback_id": "home", "blocks": blocks[:VIEW_BLOCKS]}


def home_view(data: HomeData) -> dict[str, Any]:
    """The Home tab of ``data.user_id``: a valid view for any data."""
    blocks: list[Block] = [header("Glider Relay")]
    if data.refused:
        return _view([*blocks, section(NOT_ALLOWED)])
    blocks += [*_approvals(data), *_commands(data), {"type": "divider"}]
    blocks.append(section("*Portfolios*"))
    if data.page is None:
        note = data.glider_note or "The portfolio list is unavailable."
        blocks.append(section(f":warning: {escape(note)}"))
    else:
        blocks += _rows(data.page, data.latest, data.now)
        blocks.append(context(page_summary(data.page)))
        blocks += _paging(data.page)
    blocks.append(context(f"Updated {_when(data.now, data.now)} · `/rebalance list` in a channel"))
    return _view(blocks)


class ListView(BaseModel):
    """What ``/rebalance list`` shows: one page, or why there is none."""

    model_config = ConfigDict(frozen=True)

    now: datetime
    page: Page | None = None
    glider_note: str | None = None
    latest: dict[str, RequestRecord] = {}


def portfolio_list(view: ListView) -> Reply:
    """The ``/rebalance list`` reply: a page of portfolios and how to see the next."""
    blocks = [section(":card_index_dividers: *Portfolios on Glider*")]
    if view.page is None:
        note = view.glider_note or "The portfolio list is unavailable."
        blocks.append(section(f":warning: {escape(note)}"))
        return Reply(text=f"Portfolios on Glider: {escape(note)}", blocks=blocks)
    blocks += _rows(view.page, view.latest, view.now)
    summary = page_summary(view.page)
    if view.page.next_offset is not None:
        number = view.page.next_offset // view.page.size + 1
        summary += f" · next: {_code(f'/rebalance list {number}')}"
    blocks.append(context(summary))
    return Reply(text=f"Portfolios on Glider: {summary}", blocks=blocks)


def list_refused() -> Reply:
    """``/rebalance list`` from a user who may read no portfolio."""
    return Reply(text=NOT_ALLOWED, blocks=[section(NOT_ALLOWED)])
