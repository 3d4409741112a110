"""The on-call alert's Slack message as it is kept in Redis (``keys.oncall_alert``): pure.

An alert is kept current like a job card: every change to it (a failure opens it, an
acknowledge, a retry or pause from its buttons, the resolve) is an :class:`AlertChange`
applied by ``webhook_keys.lua`` in the same step that creates the delivery to the
on-call Slack target, and bumps the alert's version. That delivery's body is only a
wake-up naming the alert (:func:`wake_body`); its attempt renders the latest version
(relay/webhooks/alert_sender.py), so a retried or late delivery never shows an older
state after a newer one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from relay.webhooks.alert_view import MARKER_CHARS, AlertState, Step

_Text = Annotated[str, StringConstraints(max_length=3000)]
_Short = Annotated[str, StringConstraints(max_length=200)]


class _Change(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Seed(_Change):
    """An alert posted before alerts were kept: its message, taken from the click."""

    h: _Text
    d: _Text
    ch: _Short
    ts: _Short


class Open(_Change):
    """A failure: a new incident posts a new message; while one is open, the same is updated."""

    op: Literal["open"] = "open"
    h: _Text  # headline (mrkdwn, escaped)
    d: _Text  # detail (mrkdwn, escaped)
    act: Literal["0", "1"]  # "1": it has the on-call buttons
    to: _Short  # the channel to post it in


class Acknowledge(_Change):
    op: Literal["ack"] = "ack"
    user: _Short
    at: str  # ISO 8601
    seed: Seed | None = None


class Did(_Change):
    """Retry requested / paused, from the alert's buttons."""

    op: Literal["step"] = "step"
    what: _Short
    user: _Short
    at: str
    seed: Seed | None = None


class Resolve(_Change):
    op: Literal["resolve"] = "resolve"
    note: _Text
    at: str


AlertChange = Open | Acknowledge | Did | Resolve


def change_json(change: AlertChange) -> str:
    """The change as the Lua step reads it (no ``null`` fields: cjson would make them values)."""
    return change.model_dump_json(exclude_none=True)


def wake_body(marker: str) -> bytes:
    """The body of a delivery to the on-call Slack target: which alert to render."""
    return json.dumps({"alert": marker[:MARKER_CHARS]}, separators=(",", ":")).encode()


def wake_marker(body: bytes | str) -> str | None:
    """The alert a delivery body names; None for a message body (an earlier version's)."""
    try:
        held = json.loads(body)
    except ValueError:
        return None
    if isinstance(held, dict) and set(held) == {"alert"} and isinstance(held["alert"], str):
        return held["alert"]
    return None


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert's hash read back: what it shows, its versions and where it lives."""

    state: AlertState | None  # None: nothing to show (never opened, or expired)
    channel: str | None  # where a new message is posted
    version: int = 0
    rendered: int = 0
    message_channel: str | None = None  # where the posted message lives, with its ts
    ts: str | None = None

    @classmethod
    def from_hash(cls, marker: str, fields: Mapping[str, str]) -> StoredAlert:
        version, rendered = _int(fields.get("v")), _int(fields.get("r"))
        where = fields.get("ch") or None, fields.get("ts") or None
        headline = fields.get("h")
        if not headline:
            return cls(None, None, version, rendered, *where)
        acked_at = _when(fields.get("aa"))
        state = AlertState(
            marker=marker,
            headline=headline,
            detail=fields.get("d") or "",
            actionable=fields.get("act") == "1",
            acked_by=(fields.get("ab") or None) if acked_at else None,
            acked_at=acked_at,
            steps=_steps(fields.get("st")),
            resolved_at=_when(fields.get("ra")),
            resolved_note=fields.get("rn") or None,
            failures=max(1, _int(fields.get("n"))),
        )
        return cls(state, fields.get("to") or None, version, rendered, *where)

    def to_render(self) -> int | None:
        """The version to render now, or None (nothing to show, or already shown)."""
        if self.state is None or self.version <= self.rendered:
            return None
        return self.version


def _int(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _when(raw: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _steps(raw: str | None) -> tuple[Step, ...]:
    try:
        held = json.loads(raw) if raw else []
    except ValueError:
        return ()
    steps: list[Step] = []
    for item in held if isinstance(held, list) else []:
        if isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) for x in item):
            at = _when(item[2])
            if at is not None:
                steps.append(Step(item[0], item[1], at))
    return tuple(steps[-5:])
