"""What the requester reads in Slack about their command's outcome: a pure renderer.

Everything from a user or from Glider goes through :func:`relay.slack.blocks.escape`,
so an error text like ``<!channel>`` reaches Slack inert.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relay.core.plans import ReplyKind
from relay.core.records import RequestRecord, RequestState
from relay.slack.blocks import context, escape, message, section, slack_date

_REFUSALS = {
    "not_found": "Glider does not know portfolio {pf} (or it belongs to another tenant).",
    "forbidden": "the relay's Glider API key lacks the scope for this.",
    "unauthorized": "Glider did not accept the relay's API key.",
}


def render(record: RequestRecord, kind: ReplyKind, *, now: datetime) -> dict[str, Any]:
    """The Slack message (``text`` fallback and ``blocks``) for one outcome of ``record``."""
    headline = _awaiting(record) if kind is ReplyKind.AWAITING_USER else _final(record, now)
    details = [f"request `{escape(record.request_id)}`"]
    if record.operation_id:
        details.append(f"operation `{escape(record.operation_id)}`")
    return message(headline, [section(headline), context(" · ".join(details))])


def _pf(record: RequestRecord) -> str:
    return f"`{escape(record.portfolio_id)}`"


def _why(record: RequestRecord) -> str:
    return escape(record.error_message or record.error_code or "no reason given")


def _awaiting(record: RequestRecord) -> str:
    return (
        f":raised_hand: Glider is waiting for an end-user action on the rebalance of "
        f"{_pf(record)}. The relay keeps watching and will tell you how it ends."
    )


_FINAL = {
    RequestState.COMPLETED: ":white_check_mark: Rebalance of {pf} completed.",
    RequestState.PAUSED: ":double_vertical_bar: Automation of {pf} is paused.",
    RequestState.RESUMED: ":arrow_forward: Automation of {pf} is running again.",
    RequestState.CANCELLED: ":no_entry_sign: Rebalance of {pf} was cancelled: {why}",
    RequestState.FAILED: ":x: The {verb} of {pf} failed: {why}",
    RequestState.STUCK: ":warning: Rebalance of {pf} is stuck: {why}",
}


def _final(record: RequestRecord, now: datetime) -> str:
    if record.state is RequestState.REJECTED:
        return _rejected(record, now)
    template = _FINAL.get(record.state, "The {verb} of {pf} is {state}.")
    return template.format(
        pf=_pf(record),
        verb=record.action.value,
        why=_why(record),
        state=escape(record.state.value),
    )


def _rejected(record: RequestRecord, now: datetime) -> str:
    pf, verb = _pf(record), record.action.value
    if record.error_code == "cooldown":
        when = f" You can retry {slack_date(record.retry_at, now=now)}." if record.retry_at else ""
        return f":hourglass: Glider refused the rebalance of {pf}: it is in its cooldown.{when}"
    template = _REFUSALS.get(record.error_code or "")
    reason = template.format(pf=pf) if template else _why(record)
    return f":no_entry: Glider refused to {verb} {pf}: {reason}"
