"""Pure rules of the job card (docs/contract.md §9): which moves it shows, which version
to render, where it lives, and which Slack answers make it fall back.

A card has a version per request, bumped in the same atomic step that records the
state it shows (``relay/store/lua/outcome_apply.lua``, ``enqueue.lua``); a notifier
renders the latest version under the card's lock, and never one at or below what
was already rendered, so Slack never sees an older state after a newer one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

# The record fields whose change the card shows: the state, and Glider's state within it
# (running / retrying / awaiting user).
_SHOWN = frozenset({"state", "operation_state"})

# Slack errors after which the card cannot live (or go on living) in the command's channel.
FALLBACK_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "message_not_found",
        "is_archived",
        "cant_update_message",
        "edit_window_closed",
        "restricted_action",
        "invalid_blocks",
        "msg_too_long",
    }
)
# ... of which these are about the message itself: first try the plain-text version there.
PLAIN_TEXT_ERRORS = frozenset({"invalid_blocks", "msg_too_long"})


class Via(StrEnum):
    """Where a card lives: the command's channel, the requester's reply, a direct message."""

    CHANNEL = "channel"
    RESPONSE_URL = "response_url"
    DIRECT_MESSAGE = "direct_message"


_VIAS = frozenset(v.value for v in Via)


@dataclass(frozen=True, slots=True)
class CardState:
    """A card's stored state (``keys.card``): latest and rendered version, where it is."""

    version: int = 0
    rendered: int = 0
    via: Via | None = None
    channel: str | None = None
    ts: str | None = None

    @classmethod
    def from_hash(cls, fields: Mapping[str, str]) -> CardState:
        via = fields.get("via") or ""
        return cls(
            version=int(fields.get("v") or 0),
            rendered=int(fields.get("r") or 0),
            via=Via(via) if via in _VIAS else None,
            channel=fields.get("ch") or None,
            ts=fields.get("ts") or None,
        )


def shows_change(set_fields: Mapping[str, str]) -> bool:
    """Does a transition that sets ``set_fields`` change what the card shows?"""
    return not _SHOWN.isdisjoint(set_fields)


def to_render(card: CardState) -> int | None:
    """The version to render now, or None: what was rendered is already the latest.

    The latest version, not the one of the stream entry that woke the notifier: an entry
    is a wake-up, and any of a card's entries renders everything newer than ``rendered``.
    """
    return card.version if card.version > card.rendered else None


def first_target(card: CardState, channel: str | None) -> Via:
    """Where the next render goes: where the card lives, else the command's channel (a
    channel id, not a user's DM with someone else, where the bot cannot post), else the
    requester's reply."""
    if card.via is not None:
        return card.via
    if channel and not channel.startswith("D"):
        return Via.CHANNEL
    return Via.RESPONSE_URL


def response_url_limit(uses: int, *, final: bool) -> int:
    """How many of a response_url's ``uses`` an update may bring the count to: an
    intermediate state leaves the last use to the final one, which must get through."""
    return uses if final else uses - 1
