"""The audit log in Redis (docs/contract.md §6.9): one stream, append-only.

Each entry is a stream entry ``{"entry": <AuditEntry JSON>}`` at ``keys.AUDIT``.
The Lua step that makes a change appends its entry itself, in the same atomic call
(an ``XADD`` of field ``entry`` to the audit stream it is given in KEYS), so an entry
exists exactly when its change happened; :meth:`AuditStore.append` is for steps
that change nothing else (a refusal). Nothing here edits or deletes an entry:
only retention (:meth:`AuditStore.trim`, run by the worker's upkeep) drops the
oldest, by stream id (Redis's clock at the append).

Reads page newest first with the stream id as cursor. Filters are applied while
walking back, at most ``SCAN_BUDGET`` entries per call: a page may then hold fewer
than ``limit`` entries and still a ``nextCursor`` (a rare filter never makes one
call walk the whole log). ``since``/``until`` bound the walk by stream id, widened by
``CLOCK_SLACK_MS`` for the writers' clocks, and then compare each entry's ``at``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from relay.core.audit import AuditAction, AuditEntry
from relay.store import keys
from relay.store.connection import text

log = logging.getLogger(__name__)

ENTRY_FIELD = "entry"  # the stream field that holds an entry's JSON (every script writes it)
SCAN_BUDGET = 5000
CLOCK_SLACK_MS = 5 * 60 * 1000  # writers' clocks (an entry's `at`) against Redis's (its id)
_CHUNK = 500
_DAY_MS = 24 * 3600 * 1000
CURSOR_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def entry_arg(entry: AuditEntry | None) -> str:
    """An entry as a script's ARGV (``''``: the step appends none)."""
    return "" if entry is None else entry.to_json()


def known_subjects() -> frozenset[str]:
    """The first words of every action (``subscription`` of ``subscription.deleted``)."""
    return frozenset(action.value.split(".", 1)[0] for action in AuditAction)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What a page shows: every field that is set must match.

    ``action`` is an action (``command.refused``) or its subject alone
    (``subscription``: every ``subscription.*``). ``user`` matches a Slack actor's
    user id or user name.
    """

    portfolio: str | None = None
    user: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: AuditEntry) -> bool:
        action = entry.action.value
        actor = entry.actor
        return (
            (self.portfolio is None or entry.portfolio_id == self.portfolio)
            and (self.user is None or self.user in (actor.user_id, actor.user_name))
            and (
                self.action is None or action == self.action or action.startswith(self.action + ".")
            )
            and (self.since is None or entry.at >= self.since)
            and (self.until is None or entry.at <= self.until)
        )

    def stream_range(self, cursor: str | None) -> tuple[str, str]:
        """The (max, min) stream ids of the walk, newest first."""
        upper = "+"
        if cursor is not None:
            upper = f"({cursor}"
        elif self.until is not None:
            upper = str(max(0, _ms(self.until) + CLOCK_SLACK_MS))  # ids start at 0
        lower = "-" if self.since is None else str(max(0, _ms(self.since) - CLOCK_SLACK_MS))
        return upper, lower


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _parse(raw: dict[Any, Any]) -> AuditEntry | None:
    fields = {text(k): text(v) for k, v in raw.items()}
    body = fields.get(ENTRY_FIELD)
    if body is None and len(fields) == 1:
        # A step written against keys.AUDIT alone may name its one field otherwise:
        # its entry is still an entry.
        [body] = fields.values()
    try:
        return AuditEntry.model_validate_json(body or "")
    except ValidationError as exc:
        # Never expected (every writer builds a validated entry): shown in the log, not served.
        log.error("unreadable audit entry skipped: %s", exc.errors()[0]["msg"])
        return None


class AuditStore:
    """The audit stream on one Redis client: append, page, trim."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def append(self, entry: AuditEntry) -> str:
        """Append ``entry`` on its own (a step with no other change); returns its stream id."""
        stream_id = await self.redis.xadd(keys.AUDIT, {ENTRY_FIELD: entry.to_json()})
        return text(stream_id)

    async def page(
        self,
        where: AuditFilter,
        *,
        cursor: str | None = None,
        limit: int = 50,
        budget: int = SCAN_BUDGET,
    ) -> tuple[list[AuditEntry], str | None]:
        """Up to ``limit`` matching entries after ``cursor``, newest first, and the next cursor.

        ``cursor`` is a stream id (``CURSOR_RE``) from an earlier page.
        """
        upper, lower = where.stream_range(cursor)
        found: list[tuple[str, AuditEntry]] = []
        scanned, count = 0, min(limit + 1, _CHUNK)
        while scanned < budget:
            count = min(count, budget - scanned)
            chunk: Sequence[Any] = (
                await self.redis.xrevrange(keys.AUDIT, max=upper, min=lower, count=count) or []
            )
            for raw_id, fields in chunk:
                entry = _parse(fields)
                if entry is not None and where.matches(entry):
                    found.append((text(raw_id), entry))
            scanned += len(chunk)
            if len(found) > limit:  # one more than fits: there is a next page
                return [entry for _, entry in found[:limit]], found[limit - 1][0]
            if len(chunk) < count:  # the walk reached its end
                return [entry for _, entry in found], None
            upper = f"({text(chunk[-1][0])}"
            count = min(count * 2, _CHUNK)  # a filter that matches little: bigger steps
        # Out of budget: the next page goes on from the last entry walked.
        return [entry for _, entry in found], upper[1:]

    async def trim(self, *, now_ms: int, retention_days: int) -> int:
        """Drop the entries appended more than ``retention_days`` ago; returns how many."""
        horizon = max(0, now_ms - retention_days * _DAY_MS)
        removed: int = await self.redis.xtrim(keys.AUDIT, minid=horizon, approximate=False)
        return removed
