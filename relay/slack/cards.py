"""The job card (docs/contract.md §9): one Slack message per queued command, rendered
from its request record for each state. Pure.

Everything from a user or from Glider is escaped and fitted by :mod:`relay.slack.blocks`,
so a card is valid Block Kit for any input. The card's version rides in the message's
``metadata`` (``event_payload.version``), so what Slack shows can be told apart in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from relay.core.bounds import ID_CHARS, clip
from relay.core.commands import Action, Requester
from relay.core.plans import ReplyKind
from relay.core.records import RequestRecord, RequestState
from relay.slack.blocks import Block, context, escape, fallback, message, section
from relay.slack.replies import render as reply_text

RETRY_ACTION = "job.retry"
METADATA_TYPE = "glider_relay_job_card"
_REQUEST_ID = re.compile(r"req_[0-9A-Za-z]{1,64}")
_USER_ID = re.compile(r"[UW][A-Z0-9]{1,30}")

# What the card says of each state; Glider's own state shows in the open ones.
_OPEN = {
    RequestState.QUEUED: ":hourglass_flowing_sand: Queued",
    RequestState.SUBMITTED: ":arrows_counterclockwise: Submitted to Glider",
    RequestState.AWAITING_USER: ":raised_hand: Awaiting an end-user action",
}
_RUNNING = {
    "running": ":arrows_counterclockwise: Running",
    "retrying": ":repeat: Retrying (Glider retries the operation)",
    "awaiting_user": ":raised_hand: Awaiting an end-user action",
}
_FINAL = {
    RequestState.COMPLETED: ":white_check_mark: Completed",
    RequestState.PAUSED: ":double_vertical_bar: Paused",
    RequestState.RESUMED: ":arrow_forward: Resumed",
    RequestState.FAILED: ":x: Failed",
    RequestState.CANCELLED: ":no_entry_sign: Cancelled",
    RequestState.REJECTED: ":no_entry: Rejected by Glider",
    RequestState.STUCK: ":warning: Stuck",
}
# Final states whose title says it all (no reason to quote).
_SILENT = frozenset({RequestState.COMPLETED, RequestState.PAUSED, RequestState.RESUMED})
_VERB = {Action.REBALANCE: "Rebalance", Action.PAUSE: "Pause", Action.RESUME: "Resume"}


def status_line(record: RequestRecord) -> str:
    """The card's state as one line, Glider's operation state within an open one."""
    if record.state is RequestState.SUBMITTED and record.operation_state in _RUNNING:
        return _RUNNING[record.operation_state]
    return _OPEN.get(record.state) or _FINAL.get(record.state) or escape(record.state.value)


def _when(at: datetime) -> str:
    """An absolute time (a card stays up: no "5 min ago" that goes stale)."""
    iso = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time_secs}}|{iso}>"


def _who(person: Requester) -> str:
    if person.user_id and _USER_ID.fullmatch(person.user_id):
        return f"<@{person.user_id}>"
    return escape(person.user_name or "someone")


def _title(record: RequestRecord) -> str:
    verb = _VERB.get(record.action, escape(record.action.value))
    return f"*{verb} of `{escape(record.portfolio_id)}`* · {status_line(record)}"


def _facts(record: RequestRecord) -> list[str]:
    facts = [f"requested by {_who(record.requested_by)}"]
    if record.approved_by is not None:
        facts.append(f"approved by {_who(record.approved_by)}")
    facts.append(f"queued {_when(record.accepted_at)}")
    if record.submitted_at is not None:
        facts.append(f"submitted {_when(record.submitted_at)}")
    if record.finished_at is not None:
        facts.append(f"finished {_when(record.finished_at)}")
    elif record.state.is_final:
        facts.append(f"ended {_when(record.updated_at)}")
    return facts


def _ids(record: RequestRecord) -> str:
    ids = [f"request `{escape(clip(record.request_id, ID_CHARS))}`"]
    if record.operation_id:
        ids.append(f"operation `{escape(record.operation_id)}`")
    return " · ".join(ids)


def _retry_button(record: RequestRecord) -> Block | None:
    """``job.retry`` on a failed rebalance (its handler applies /rebalance's policy)."""
    if record.state is not RequestState.FAILED or record.action is not Action.REBALANCE:
        return None
    if not _REQUEST_ID.fullmatch(record.request_id):
        return None
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Retry"},
        "action_id": RETRY_ACTION,
        "value": record.request_id,
        "style": "primary",
    }
    return {"type": "actions", "elements": [button]}


def _metadata(record: RequestRecord, version: int) -> dict[str, Any]:
    payload = {
        "request_id": clip(record.request_id, ID_CHARS),
        "version": version,
        "state": record.state.value,
    }
    return {"event_type": METADATA_TYPE, "event_payload": payload}


def render(record: RequestRecord, version: int, *, now: datetime) -> dict[str, Any]:
    """The card of ``record`` at ``version``: ``text``, ``blocks`` and ``metadata``."""
    blocks: list[Block] = [section(_title(record))]
    if record.state.is_final and record.state not in _SILENT:
        # The reply's wording of the outcome: Glider's reason, the cooldown's end.
        blocks.append(section(reply_text(record, ReplyKind.FINAL, now=now)["text"]))
    if record.reason:
        blocks.append(context(f"reason: {escape(record.reason)}"))
    blocks.append(context(" · ".join(_facts(record))))
    blocks.append(context(_ids(record)))
    button = _retry_button(record)
    if button is not None:
        blocks.append(button)
    text = f"{_title(record)}. {_ids(record)}"
    return {**message(text, blocks), "metadata": _metadata(record, version)}


def plain_text(record: RequestRecord, version: int, *, now: datetime) -> dict[str, Any]:
    """The card without blocks: what is sent when Slack refused the blocks."""
    lines = [_title(record), " · ".join(_facts(record)), _ids(record)]
    if record.state.is_final and record.error_message:
        lines.insert(1, escape(record.error_message))
    return {"text": fallback("\n".join(lines)), "metadata": _metadata(record, version)}


# --- examples (README renders them) ----------------------------------------------

_T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _example(**update: Any) -> RequestRecord:
    record = RequestRecord(
        request_id="req_01JD5XAMPLE0000000000000",
        action=Action.REBALANCE,
        portfolio_id="pf_growth_eu",
        state=RequestState.QUEUED,
        requested_by=Requester(team_id="T1", user_id="U024BE7LH", user_name="alice"),
        accepted_at=_T0,
        updated_at=_T0,
        reason=None,
    )
    return record.model_copy(update=update)


def _submitted(**update: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "operation_id": "op_7f3c2a",
        "operation_state": "accepted",
        "submitted_at": _T0 + timedelta(seconds=2),
    }
    return _example(**{"state": RequestState.SUBMITTED, **base, **update})


EXAMPLES: dict[str, Callable[[], dict[str, Any]]] = {
    "card-queued": lambda: render(_example(), 1, now=_T0),
    "card-submitted": lambda: render(_submitted(), 2, now=_T0),
    "card-running": lambda: render(_submitted(operation_state="running"), 3, now=_T0),
    "card-completed": lambda: render(
        _submitted(
            state=RequestState.COMPLETED,
            operation_state="completed",
            finished_at=_T0 + timedelta(minutes=3),
        ),
        4,
        now=_T0,
    ),
    "card-failed": lambda: render(
        _submitted(
            state=RequestState.FAILED,
            operation_state="failed",
            finished_at=_T0 + timedelta(minutes=3),
            error_code="operation_failed",
            error_message="broker rejected order: insufficient liquidity for ETF-XYZ",
        ),
        4,
        now=_T0,
    ),
}
