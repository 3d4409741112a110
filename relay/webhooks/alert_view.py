"""The on-call alert's states, rendered (pure): open, acknowledged, retried, paused, resolved.

An alert for a failed rebalance carries three buttons (``oncall.ack``, ``oncall.retry``,
``oncall.pause``) whose value is the incident marker (the PagerDuty ``dedup_key``). The
value is only a name: a click handler looks the incident up and checks it. A resolved
alert has no buttons left; an acknowledged one keeps retry and pause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from relay.core.clock import iso_ms
from relay.slack.blocks import Block, context, escape, message, section

ACK, RETRY, PAUSE = "oncall.ack", "oncall.retry", "oncall.pause"
ACTION_IDS = (ACK, RETRY, PAUSE)
MARKER_CHARS = 200  # a button value is at most 2000; markers are far shorter


@dataclass(frozen=True, slots=True)
class Step:
    """Something a person did from the alert: ``what`` (retried / paused) by whom, when."""

    what: str
    user_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AlertState:
    """What the alert message shows. ``headline`` and ``detail`` are mrkdwn, escaped."""

    marker: str
    headline: str
    detail: str
    actionable: bool = True  # a failed rebalance: buttons; a disabled subscription: none
    acked_by: str | None = None
    acked_at: datetime | None = None
    steps: tuple[Step, ...] = field(default=())
    resolved_at: datetime | None = None
    resolved_note: str | None = None
    failures: int = 1  # failures since the incident opened (one message for them all)

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None

    @property
    def acknowledged(self) -> bool:
        return self.acked_by is not None

    def acknowledge(self, user_id: str, at: datetime) -> AlertState:
        return replace(self, acked_by=user_id, acked_at=at)

    def did(self, what: str, user_id: str, at: datetime) -> AlertState:
        # The last few steps are enough to show; the alert must stay within Slack's limits.
        return replace(self, steps=(*self.steps, Step(what, user_id, at))[-5:])

    def resolve(self, note: str, at: datetime) -> AlertState:
        return replace(self, resolved_at=at, resolved_note=note)


def _user(user_id: str) -> str:
    """A user mention for a Slack id (the id came from a signed payload, but escape anyway)."""
    return f"<@{escape(user_id)}>"


def _button(text: str, action_id: str, marker: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": marker[:MARKER_CHARS],
    }
    if style:
        button["style"] = style
    return button


def _buttons(state: AlertState) -> Block | None:
    if not state.actionable or state.resolved:
        return None
    marker = state.marker
    elements = [] if state.acknowledged else [_button("Acknowledge", ACK, marker, "primary")]
    elements += [_button("Retry", RETRY, marker), _button("Pause", PAUSE, marker, "danger")]
    return {"type": "actions", "block_id": "oncall", "elements": elements}


def status_line(state: AlertState) -> str:
    """The state in words: resolved, acknowledged by whom and when, or open."""
    if state.resolved_at is not None:
        note = f": {state.resolved_note}" if state.resolved_note else ""
        return f":white_check_mark: *Resolved* at {iso_ms(state.resolved_at)}{note}"
    if state.acked_by is not None and state.acked_at is not None:
        return f":eyes: *Acknowledged* by {_user(state.acked_by)} at {iso_ms(state.acked_at)}"
    return ":red_circle: *Open*: nobody has acknowledged it yet"


def render(state: AlertState, channel: str) -> dict[str, Any]:
    """The chat.postMessage / chat.update body of the alert in ``state``."""
    detail = state.detail
    if state.failures > 1:
        detail += f" · failed {state.failures} times since this alert opened"
    blocks = [section(state.headline), context(detail), section(status_line(state))]
    if state.steps:
        lines = [f"{escape(s.what)} by {_user(s.user_id)} at {iso_ms(s.at)}" for s in state.steps]
        blocks.append(context(" · ".join(lines)))
    buttons = _buttons(state)
    if buttons is not None:
        blocks.append(buttons)
    head = state.headline if not state.resolved else f"Resolved: {state.headline}"
    return {"channel": channel, **message(head, blocks), "unfurl_links": False}


_AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
_OPEN = AlertState(
    marker="glider-relay:portfolio:pf_demo",
    headline=":rotating_light: Rebalance of portfolio `pf_demo` failed: "
    "glider_failed: slippage above 2% on BTC",
    detail=f"request `req_01JDEMO` · operation `op_01JDEMO` · {iso_ms(_AT)}",
)


def _acknowledged() -> dict[str, Any]:
    state = _OPEN.acknowledge("U0ONCALL1", _AT).did("Retry requested", "U0ONCALL1", _AT)
    return render(state, "C0ONCALL1")


def _resolved() -> dict[str, Any]:
    note = "rebalanced again (request `req_01JNEXT`)"
    state = _OPEN.acknowledge("U0ONCALL1", _AT).resolve(note, _AT)
    return render(state, "C0ONCALL1")


EXAMPLES: dict[str, Callable[[], dict[str, Any]]] = {
    "alert-open": lambda: render(_OPEN, "C0ONCALL1"),
    "alert-acknowledged": _acknowledged,
    "alert-resolved": _resolved,
}
