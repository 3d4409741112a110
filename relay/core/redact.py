"""Secret redaction: the one function that keeps a configured secret out of any text.

Secret values are registered once at start-up (``Settings.secret_values()``, and
the Glider client's key) and :func:`redact` replaces each of them, in every form
it can take inside text that crosses a boundary: as it is, JSON-escaped (a
secret holding ``"`` or ``\\`` looks different inside a JSON string) and
Slack-escaped (``&``, ``<``, ``>`` as entities). Upstream text is redacted where
it enters (the Glider client's errors) and again where it leaves (log lines,
webhook bodies, Slack messages, the admin API), so one missed door is not a leak.

Every secret counts, however short: a 4-character Redis password garbles a few
log words, which is better than printing it.

A cut must come after redaction (``upstream_text``, ``fit``). In case one ever
comes first, :func:`redact` also replaces a secret's cut-off start where a cut
leaves it: at the very end of the text, just before an ellipsis (as is or
JSON-escaped), or at the end of a JSON string (a log field cut with ``[:n]``).
Only starts are looked for, because every cut in the relay keeps the start of a
text (relay/core/bounds.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from relay.core.bounds import ELLIPSIS

REDACTED = "[REDACTED]"
# A cut-off start of a secret shorter than this is left alone: it reveals little, and
# shorter matches would garble ordinary words that happen to end a cut text.
FRAGMENT_MIN_CHARS = 6
# What marks a cut: the ellipsis of relay.core.bounds, as is and inside JSON.
_ELLIPSES = (ELLIPSIS, json.dumps(ELLIPSIS)[1:-1])


class _Registry:
    """The registered secrets and the one pattern that finds all their forms."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.pattern: re.Pattern[str] | None = None
        # The first FRAGMENT_MIN_CHARS of every form long enough to leave a telling start
        # behind at a cut, and the forms that begin with each.
        self.heads: re.Pattern[str] | None = None
        self.by_head: dict[str, list[str]] = {}

    def update(self) -> None:
        self.pattern = _compile(self.secrets)
        forms = {form for secret in self.secrets for form in _forms(secret)}
        self.by_head = {}
        for form in sorted(f for f in forms if len(f) > FRAGMENT_MIN_CHARS):
            self.by_head.setdefault(form[:FRAGMENT_MIN_CHARS], []).append(form)
        alternatives = "|".join(re.escape(head) for head in sorted(self.by_head))
        self.heads = re.compile(alternatives) if alternatives else None


_registry = _Registry()


def _forms(secret: str) -> set[str]:
    """The ways ``secret`` can be spelled inside text we store or send."""
    slack = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        slack,
        json.dumps(slack)[1:-1],
    }


def _compile(secrets: set[str]) -> re.Pattern[str] | None:
    forms = {form for secret in secrets for form in _forms(secret) if form}
    if not forms:
        return None
    # Longest first, one pass: a secret that contains another goes whole, and a
    # replacement is never scanned again (so a secret inside "[REDACTED]" is harmless).
    alternatives = sorted(forms, key=lambda form: (-len(form), form))
    return re.compile("|".join(re.escape(form) for form in alternatives))


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so that :func:`redact` replaces them from now on."""
    new = {value for value in values if value} - _registry.secrets
    if new:
        _registry.secrets.update(new)
        _registry.update()


def unregister_secrets(values: Iterable[str | None]) -> None:
    """Forget secret values (a process that drops a configuration, and tests)."""
    _registry.secrets.difference_update(value for value in values if value)
    _registry.update()


def redact(text: str) -> str:
    """``text`` with every registered secret, in any of its forms, replaced by ``[REDACTED]``."""
    pattern = _registry.pattern
    if pattern is None or not text:
        return text
    return _redact_cut_starts(pattern.sub(REDACTED, text))


def _at_cut(text: str, at: int) -> bool:
    """Whether a cut may have ended a text at ``at``: its end, an ellipsis, a string's end."""
    if at == len(text) or text.startswith(_ELLIPSES, at):
        return True
    # A JSON string's closing quote: what follows a field cut with [:n] in a log line.
    return text.startswith('"', at) and not _escaped(text, at)


def _escaped(text: str, at: int) -> bool:
    """Whether the character at ``at`` is escaped: an odd run of backslashes before it.

    An escaped quote ends no string; cutting a fragment there would eat half the escape
    and end the string early, breaking the JSON.
    """
    run = 0
    while run < at and text[at - run - 1] == "\\":
        run += 1
    return run % 2 == 1


def _matching(text: str, start: int, form: str) -> int:
    """How many characters of ``text`` from ``start`` spell the start of ``form``."""
    count = 0
    for mine, theirs in zip(text[start : start + len(form)], form, strict=False):
        if mine != theirs:
            break
        count += 1
    return count


def _cut_starts(text: str, heads: re.Pattern[str]) -> list[tuple[int, int]]:
    """The spans of ``text`` that are a secret's start ending where a cut may have been."""
    spans = []
    found = heads.search(text)
    while found is not None:
        at = found.start()
        longest = max(_matching(text, at, form) for form in _registry.by_head[found.group()])
        # The cut may lie inside the match: what follows a cut can go on like the secret
        # (a JSON-escaped ellipsis begins with "\", as an escape inside the secret does).
        ends = range(at + longest, at + FRAGMENT_MIN_CHARS - 1, -1)
        end = next((end for end in ends if _at_cut(text, end)), None)
        if end is not None:
            spans.append((at, end))
        found = heads.search(text, at + 1)  # heads may overlap
    return spans


def _redact_cut_starts(text: str) -> str:
    """``text`` with the cut-off start of any secret at a cut edge replaced by ``[REDACTED]``."""
    heads = _registry.heads
    if heads is None:
        return text
    pieces, kept = [], 0
    for start, end in _cut_starts(text, heads):
        if end <= kept:
            continue  # inside a span already replaced
        pieces += [text[kept : max(start, kept)], REDACTED]
        kept = end
    return text if not pieces else "".join(pieces) + text[kept:]


def redact_bytes(body: bytes) -> bytes:
    """:func:`redact` for a UTF-8 body (a webhook or Slack payload); unchanged when clean."""
    if _registry.pattern is None:
        return body
    text = body.decode("utf-8", errors="surrogateescape")
    clean = redact(text)
    return body if clean == text else clean.encode("utf-8", errors="surrogateescape")
