"""Every reply the bot sends to a slash command, as Block Kit: pure functions of their data.

Whatever came from a user or from Glider goes through :func:`relay.slack.blocks.escape`
(via :func:`_code` and :func:`_plain`), so no reply can carry ``<!channel>``, a
mention or a link that was not ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from bot.store_refusals import WriteRefused
from relay.core.bounds import MESSAGE_BLOCKS
from relay.core.commands import Action
from relay.core.records import RequestRecord
from relay.glider.models import PortfolioDetail
from relay.slack.blocks import Block, context, escape, fallback, section, slack_date

_USER_ID = re.compile(r"[UW][A-Z0-9]{1,30}")
_MAX_NAMED = 5  # at most this many allowed users named in a refusal
_WHAT = {
    Action.REBALANCE: "a rebalance of",
    Action.PAUSE: "pausing automation of",
    Action.RESUME: "resuming automation of",
}


class Reply(BaseModel):
    """One message to the requester: ``ack(**reply.payload())`` or ``respond(...)``."""

    model_config = ConfigDict(frozen=True)

    text: str  # notification / fallback text (mrkdwn, escaped like the blocks)
    blocks: list[Block]
    response_type: Literal["ephemeral", "in_channel"] = "ephemeral"

    @field_validator("text")
    @classmethod
    def _fit_text(cls, value: str) -> str:
        return fallback(value)

    @field_validator("blocks")
    @classmethod
    def _at_most_50(cls, value: list[Block]) -> list[Block]:
        return value[:MESSAGE_BLOCKS]

    def payload(self) -> dict[str, Any]:
        return self.model_dump()


def _code(value: str) -> str:
    """Untrusted value as inline code: escaped, and no backtick to break out of the span."""
    quoted = escape(value.replace("`", "'"))
    return f"`{quoted}`"


def _plain(value: str) -> str:
    return escape(value)


def _reply(*blocks: Block, text: str) -> Reply:
    return Reply(text=text, blocks=list(blocks))


def queued(action: Action, portfolio_id: str, request_id: str, reason: str | None) -> Reply:
    """The ack: what was queued, for which portfolio, under which request id."""
    line = f":inbox_tray: Queued {_WHAT[action]} {_code(portfolio_id)}."
    if reason:
        line += f"\nReason: {_plain(reason)}"
    return _reply(
        section(line),
        context(f"Request {_code(request_id)} · the outcome will be posted here."),
        text=f"Queued {_WHAT[action]} {_code(portfolio_id)} as {_code(request_id)}.",
    )


def already_queued(portfolio_id: str, request_id: str) -> Reply:
    """Slack delivered the same command again: the first request stands, nothing new."""
    return _reply(
        section(f":inbox_tray: This command for {_code(portfolio_id)} is already queued."),
        context(f"Request {_code(request_id)} · nothing new was queued."),
        text=f"Already queued as {_code(request_id)}.",
    )


def in_flight(portfolio_id: str, request_id: str, record: RequestRecord | None) -> Reply:
    """A rebalance of this portfolio is still running: name it instead of starting another."""
    operation = record.operation_id if record else None
    state = record.state.value if record else "queued"
    op_text = f"Glider operation {_code(operation)}" if operation else "not yet sent to Glider"
    return _reply(
        section(
            f":hourglass_flowing_sand: A rebalance of {_code(portfolio_id)} is already in "
            f"flight: request {_code(request_id)} ({_plain(state)}), {op_text}."
        ),
        context("Nothing new was queued; its outcome will be posted when it finishes."),
        text=f"A rebalance of {_code(portfolio_id)} is already in flight ({_code(request_id)}).",
    )


def usage(forms: Iterable[str], problem: str | None = None) -> Reply:
    """Help, or a usage error: what was wrong (if anything) and the right forms."""
    lines = "\n".join(f"• {_code(form)}" for form in forms)
    head = f":warning: {_plain(problem)}" if problem else ":robot_face: glider-relay commands"
    return _reply(
        section(head),
        section(lines),
        context("Portfolio ids are 1 to 64 letters, digits, `_` or `-`. Nothing was queued."),
        text=f"{head}\n{lines}",
    )


def refused(user_id: str, allowed: frozenset[str]) -> Reply:
    """Not on ``BOT_ALLOWED_USERS``: say so, and whom to ask (never any secret)."""
    named = sorted(u for u in allowed if _USER_ID.fullmatch(u))[:_MAX_NAMED]
    if named:
        ask = "Ask " + ", ".join(f"<@{u}>" for u in named) + " to run it, or to have you added"
    else:
        ask = "Nobody is allowed yet: ask whoever operates glider-relay to add you"
    return _reply(
        section(":no_entry: You are not allowed to run glider-relay commands. Nothing was done."),
        context(f"{ask} (setting `BOT_ALLOWED_USERS`, your id is {_code(user_id)})."),
        text="You are not allowed to run glider-relay commands. Nothing was done.",
    )


def not_queued() -> Reply:
    """The store could not be reached: a clear answer instead of a timeout."""
    text = ":x: Could not queue your command: the relay's store is unreachable. Nothing was done."
    return _reply(section(text), context("Please try again in a minute."), text=text)


def click_not_handled(refused: WriteRefused | None) -> Reply:
    """A click the store failed under. A refusal (full, failing over) proves nothing was
    recorded; any other failure proves nothing either way. A click counts once, so the
    advice is the same: click again."""
    if refused is WriteRefused.FULL:
        why = "the relay's store is full. Nothing was done."
    elif refused is WriteRefused.READ_ONLY:
        why = "the relay's store is failing over (Redis is read-only). Nothing was done."
    else:
        why = "the relay's store did not answer."
    text = f":x: Your click could not be handled: {why}"
    return _reply(
        section(text),
        context("Click again in a minute: a click counts once, so nothing happens twice."),
        text=text,
    )


def store_full() -> Reply:
    """Redis refused the write as out of memory: an OOM reply means the script did not run."""
    text = ":x: Could not queue your command: the relay's store is full. Nothing was done."
    return _reply(
        section(text),
        context(
            "Its operator needs to free memory in Redis (or raise `maxmemory`); try again then."
        ),
        text=text,
    )


def outcome_unknown(action: Action, portfolio_id: str, request_id: str) -> Reply:
    """The write got no answer in time: it may or may not be queued, and we are finding out."""
    text = (
        f":hourglass_flowing_sand: Could not confirm that {_WHAT[action]} {_code(portfolio_id)} "
        f"was queued as {_code(request_id)}; checking. The answer follows here."
    )
    return _reply(
        section(text),
        context("Please wait for the answer before sending the command again."),
        text=text,
    )


def queued_after_all(action: Action, portfolio_id: str, request_id: str) -> Reply:
    """Settled: the write had landed; the outcome follows as for any queued command."""
    what = f"{_WHAT[action]} {_code(portfolio_id)}"
    text = f":inbox_tray: Queued after all: {what} as {_code(request_id)}."
    return _reply(section(text), context("The outcome will be posted here."), text=text)


def store_read_only(action: Action, portfolio_id: str) -> Reply:
    """Redis refused the write as read-only (a failover): the script did not run."""
    text = (
        f":x: Not queued: {_WHAT[action]} {_code(portfolio_id)}. The relay's store is "
        "failing over (Redis is read-only). Nothing was done."
    )
    return _reply(section(text), context("Please send the command again in a minute."), text=text)


def settled_not_queued(action: Action, portfolio_id: str) -> Reply:
    """Settled: the write never ran, and a tombstone makes sure it never will."""
    text = f":x: Not queued: {_WHAT[action]} {_code(portfolio_id)}. Nothing was done."
    return _reply(section(text), context("You can send the command again."), text=text)


def still_unknown(action: Action, portfolio_id: str) -> Reply:
    """The store never answered while we checked: we still do not know, and say so."""
    text = (
        f":warning: Still could not confirm whether {_WHAT[action]} {_code(portfolio_id)} was "
        "queued: the relay's store did not answer."
    )
    hint = f"Check {_code('/rebalance status ' + portfolio_id)} before sending it again."
    return _reply(section(text), context(hint), text=text)


def looking_up(portfolio_id: str) -> Reply:
    """Glider is slow: the ack says the status follows."""
    text = f":mag: Looking up {_code(portfolio_id)} on Glider; the status follows here."
    return _reply(section(text), text=text)


class StatusView(BaseModel):
    """Everything a status reply shows; ``glider_note`` explains a missing portfolio."""

    model_config = ConfigDict(frozen=True)

    portfolio_id: str
    portfolio: PortfolioDetail | None = None
    glider_note: str | None = None
    record: RequestRecord | None = None
    record_note: str | None = None
    now: datetime


def status(view: StatusView) -> Reply:
    """Schedule status, last and next rebalance, and the latest tracked request."""
    blocks = [section(f":bar_chart: Status of {_code(view.portfolio_id)}")]
    if view.portfolio is not None:
        blocks.append(section(_schedule_text(view.portfolio, view.now)))
    else:
        blocks.append(section(f":warning: {_plain(view.glider_note or 'No Glider details.')}"))
    if view.record is None and view.record_note:
        blocks.append(section(f":warning: {_plain(view.record_note)}"))
    else:
        blocks.append(section(_record_text(view.record, view.now)))
    return _reply(*blocks, text=f"Status of {_code(view.portfolio_id)}")


def _when(value: datetime | None, now: datetime) -> str:
    return slack_date(value, now=now) if value is not None else "never"


def _schedule_text(portfolio: PortfolioDetail, now: datetime) -> str:
    lines = []
    if portfolio.portfolio_name:
        lines.append(f"*{_plain(portfolio.portfolio_name)}*")
    schedule = portfolio.schedule
    if schedule is None:
        lines.append("Schedule: none")
        return "\n".join(lines)
    frequency = f" ({_plain(schedule.frequency)})" if schedule.frequency else ""
    lines += [
        f"Schedule: *{_plain(schedule.status.value)}*{frequency}",
        f"Last rebalance: {_when(schedule.last_rebalance_at, now)}",
        f"Next due: {_when(schedule.next_due_at, now)}",
    ]
    return "\n".join(lines)


def _record_text(record: RequestRecord | None, now: datetime) -> str:
    if record is None:
        return "Latest tracked request: none"
    lines = [
        f"Latest tracked request: {_code(record.request_id)} "
        f"({_plain(record.action.value)}, *{_plain(record.state.value)}*)",
        f"Accepted {_when(record.accepted_at, now)}",
    ]
    if record.requested_by.user_name:
        lines[-1] += f" from {_plain(record.requested_by.user_name)}"
    if record.operation_id:
        lines.append(f"Glider operation {_code(record.operation_id)}")
    if record.error_message or record.error_code:
        error = record.error_message or record.error_code or ""
        lines.append(f"Error: {_plain(error)}")
    return "\n".join(lines)
