"""Text that goes into Slack: escaping and small Block Kit builders.

Everything that came from a user or from Glider passes through :func:`escape`
so it can never become ``<!channel>``, a user mention or a link. Every mrkdwn text
object is ``verbatim`` too: Slack then turns no bare URL, ``#channel`` or ``@here``
of that text into a link or a mention, and renders only the ``<...>`` tokens we
wrote (``<@U...>``, ``<!date...>``, ``<url|label>``). Every builder
here also fits its text to Slack's limit (:mod:`relay.core.bounds`), cutting with an
ellipsis that never splits an entity or a token, and redacts configured
secrets: whatever a caller puts together, the block is valid and leaks nothing.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from relay.core.bounds import (
    CONTEXT_TEXT_CHARS,
    HEADER_TEXT_CHARS,
    MESSAGE_BLOCKS,
    MESSAGE_TEXT_CHARS,
    SECTION_TEXT_CHARS,
    clip,
    clip_mrkdwn,
)
from relay.core.clock import utc_now
from relay.core.redact import redact

Block = dict[str, Any]
# Slack refuses an empty or blank text object; this stands in for one.
_BLANK = "-"


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(mrkdwn: str, limit: int) -> str:
    """``mrkdwn`` redacted, cut to ``limit`` (never inside ``&lt;`` or ``<...>``), not blank."""
    text = clip_mrkdwn(redact(mrkdwn), limit)
    return text if text.strip() else _BLANK


def mrkdwn_text(mrkdwn: str, limit: int) -> Block:
    """A verbatim mrkdwn text object, fitted to ``limit``: the only way one is built."""
    return {"type": "mrkdwn", "text": fit(mrkdwn, limit), "verbatim": True}


def section(mrkdwn: str) -> Block:
    """A section of mrkdwn, fitted to Slack's 3000 characters."""
    return {"type": "section", "text": mrkdwn_text(mrkdwn, SECTION_TEXT_CHARS)}


def context(mrkdwn: str) -> Block:
    """A context block with one mrkdwn element, fitted to Slack's limit."""
    return {"type": "context", "elements": [mrkdwn_text(mrkdwn, CONTEXT_TEXT_CHARS)]}


def header(plain: str) -> Block:
    """A header (plain text: nothing to escape), cut to Slack's 150 characters."""
    text = clip(redact(plain), HEADER_TEXT_CHARS)
    return {"type": "header", "text": {"type": "plain_text", "text": text.strip() or _BLANK}}


def fallback(mrkdwn: str) -> str:
    """A message's ``text`` (notifications, screen readers), fitted to Slack's 40,000."""
    return fit(mrkdwn, MESSAGE_TEXT_CHARS)


def message(text: str, blocks: list[Block]) -> dict[str, Any]:
    """``text`` and ``blocks`` of one message: fallback fitted, at most Slack's 50 blocks."""
    return {"text": fallback(text), "blocks": blocks[:MESSAGE_BLOCKS]}


def slack_date(when: datetime, *, now: datetime | None = None) -> str:
    """Absolute and relative time: Slack's ``<!date>`` token with an ISO fallback."""
    reference = now or utc_now()
    delta = (when - reference).total_seconds()
    # Whole seconds away from zero: a fraction left over must not make a wait look shorter.
    seconds = int(math.copysign(math.ceil(abs(delta)), delta))
    iso = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    token = f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{iso}>"
    return f"{token} ({relative(seconds)})"


def relative(seconds: int) -> str:
    """``in 5 min`` / ``3 h ago``: coarse, human, never wrong in sign, never understated.

    Each unit rounds up (119 s is "in 2 min"), so a cooldown shown as over is over.
    """
    span = abs(seconds)
    if span < 60:
        amount = f"{span} s"
    elif span <= 3600:
        amount = f"{-(-span // 60)} min"
    elif span < 86400:
        minutes = -(-span // 60)
        amount = f"{minutes // 60} h {minutes % 60} min"
    else:
        hours = -(-span // 3600)
        amount = f"{hours // 24} d {hours % 24} h"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"
