"""Text that goes into Slack: escaping and small Block Kit builders.

Everything that came from a user or from Glider passes through :func:`escape`
so it can never become ``<!channel>``, a user mention or a link.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

Block = dict[str, Any]


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def section(mrkdwn: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}


def context(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn}]}


def slack_date(when: datetime, *, now: datetime | None = None) -> str:
    """Absolute and relative time: Slack's ``<!date>`` token with an ISO fallback."""
    reference = now or datetime.now(UTC)
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
