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
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"


class _Registry:
    """The registered secrets and the one pattern that finds all their forms."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.pattern: re.Pattern[str] | None = None

    def update(self) -> None:
        self.pattern = _compile(self.secrets)


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
    return pattern.sub(REDACTED, text)


def redact_bytes(body: bytes) -> bytes:
    """:func:`redact` for a UTF-8 body (a webhook or Slack payload); unchanged when clean."""
    if _registry.pattern is None:
        return body
    text = body.decode("utf-8", errors="surrogateescape")
    clean = redact(text)
    return body if clean == text else clean.encode("utf-8", errors="surrogateescape")
