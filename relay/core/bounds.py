"""How long any text from outside may be, and how it is cut: every limit in one place.

Text from Glider (error messages, names), from users (a pause reason, a user
name) and from subscribers (response bodies) is cut to these lengths before it
is stored or sent (README, *Limits*). A cut ends in ``…`` and never splits a
character: not a surrogate pair, not a combining mark from its base, not an
emoji joined with ZWJ. Cutting Slack mrkdwn additionally never splits an entity
(``&lt;``) nor one of our own ``<...>`` tokens (mentions, dates, links): escaped text
is only ever cut with :func:`clip_mrkdwn` or :func:`clip_mrkdwn_lines`, never sliced.
"""

from __future__ import annotations

import unicodedata

ELLIPSIS = "…"

# --- outside text, cut before it is stored ---------------------------------------
ERROR_MESSAGE_CHARS = 500  # a Glider error message (records, events, replies, alerts)
ERROR_CODE_CHARS = 64  # a Glider error code (API_200)
PROXY_TEXT_CHARS = 200  # a non-JSON error body (a proxy's HTML page), whitespace flattened
NAME_CHARS = 200  # Glider names and labels: portfolio, strategy, frequency, state
ID_CHARS = 128  # an upstream trace id (X-Request-Id) quoted with an error
USER_TEXT_CHARS = 80  # Slack user / team / channel names and ids
REASON_CHARS = 500  # a /pause reason (longer is a usage error, not cut)
ATTEMPT_ERROR_CHARS = 300  # why one webhook attempt failed
RESPONSE_BODY_BYTES = 1024  # the start of a subscriber's answer kept with its attempt
# A stored error: Glider's message (ERROR_MESSAGE_CHARS) with its code and our note
# ("(API_200) (after 3 attempts)"); what records, events and the admin API hold.
ERROR_TEXT_CHARS = 640
OPERATION_ID_CHARS = 512  # a longer operationId is not one (MalformedResponse)
PORTFOLIO_ID_CHARS = 256  # a longer portfolioId from Glider is not one (MalformedResponse)
# Every webhook body fits, even with each bounded field at its limit in the costliest
# JSON escapes (12 bytes per astral character); a usual one is under 1 KB.
EVENT_BODY_BYTES = 20_000
PAGERDUTY_SUMMARY_CHARS = 1024  # PagerDuty Events v2 `payload.summary`

# --- Slack's Block Kit limits (api.slack.com/reference/block-kit) ----------------
SECTION_TEXT_CHARS = 3000
CONTEXT_TEXT_CHARS = 3000  # each text element of a context block
CONTEXT_ELEMENTS = 10
HEADER_TEXT_CHARS = 150
MESSAGE_BLOCKS = 50
MESSAGE_TEXT_CHARS = 40_000  # chat.postMessage's `text`; Slack truncates beyond it

# A ZWJ, a variation selector or a combining mark belongs to the character before it.
_ZWJ = "\u200d"


def _joins_previous(char: str) -> bool:
    code = ord(char)
    return (
        char == _ZWJ
        or unicodedata.combining(char) != 0
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or unicodedata.category(char) in ("Mn", "Me")
    )


def _safe_end(text: str, end: int) -> int:
    """The largest index <= ``end`` where ``text`` can be cut between two characters."""
    while 0 < end < len(text):
        here, before = text[end], text[end - 1]
        if _joins_previous(here) or before == _ZWJ or "\udc00" <= here <= "\udfff":
            end -= 1
            continue
        break
    return end


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and ``…`` within ``limit``."""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    return text[: _safe_end(text, limit - len(ELLIPSIS))] + ELLIPSIS


def clip_bytes(body: bytes, limit: int) -> str:
    """At most ``limit`` bytes of a UTF-8 answer as text, without a half character at the end.

    Bad bytes inside become U+FFFD; an incomplete sequence at the very end (where a
    read stopped) is dropped rather than shown as one.
    """
    head = body[:limit]
    lead = len(head)
    # Step back over the continuation bytes (10xxxxxx) at the end to their lead byte.
    while lead > 0 and len(head) - lead < 3 and head[lead - 1] & 0xC0 == 0x80:
        lead -= 1
    if lead > 0 and head[lead - 1] >= 0xC0:
        first = head[lead - 1]
        needed = 2 if first < 0xE0 else 3 if first < 0xF0 else 4
        if len(head) - (lead - 1) < needed:
            head = head[: lead - 1]
    return head.decode("utf-8", errors="replace")


def clip_mrkdwn(text: str, limit: int) -> str:
    """Cut Slack mrkdwn to ``limit`` with ``…``, never inside ``&lt;`` or a ``<...>`` token.

    Every ``&`` and ``<`` of escaped outside text is ours (escaping turned theirs into
    entities), so an ``&`` without its ``;`` or a ``<`` without its ``>`` in the kept
    part marks a cut inside one: the cut moves before it.
    """
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    end = _safe_end(text, limit - len(ELLIPSIS))
    head = text[:end]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    angle = head.rfind("<")
    if angle != -1 and ">" not in head[angle:]:
        head = head[:angle]
    return head[: _safe_end(head, len(head))] + ELLIPSIS


def clip_mrkdwn_lines(lines: list[str], limit: int) -> str:
    """Lines of Slack mrkdwn joined by newlines, cut to ``limit`` between whole lines.

    A cut inside a line, even a safe one, can leave half of a ``*bold*`` span; so whole
    lines are kept while they fit, and an ``…`` line says more was left out. A first line
    longer than ``limit`` alone is cut by :func:`clip_mrkdwn`.
    """
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    used = len(ELLIPSIS)  # the closing line
    for line in lines:
        if used + len(line) + 1 > limit:
            break
        kept.append(line)
        used += len(line) + 1
    if not kept:
        return clip_mrkdwn(text, limit)
    return "\n".join([*kept, ELLIPSIS])
