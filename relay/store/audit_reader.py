"""Reading the audit stream (``keys.AUDIT``) for the console, newest first.

The stream holds one :class:`relay.core.audit.AuditEntry` JSON per entry in the
field ``entry`` (what every step that appends writes). This is mostly a reader:
only sign-ins (which change nothing else) are appended here; nothing changes or deletes one.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from relay.core.audit import AuditEntry
from relay.store import keys
from relay.store.connection import text, text_map

ENTRY_FIELD = "entry"
SCAN_BUDGET = 2000  # stream entries walked per page at most, whatever the filter


def _parse(fields: Any) -> AuditEntry | None:
    try:
        return AuditEntry.model_validate_json(text_map(fields).get(ENTRY_FIELD, ""))
    except ValidationError:
        return None  # an entry of a newer shape this reader does not know: skipped


async def audit_page(
    redis: aioredis.Redis, *, action: str | None, cursor: str | None, limit: int
) -> tuple[list[AuditEntry], str | None]:
    """Up to ``limit`` entries older than ``cursor`` (a stream id), optionally of one action."""
    found: list[AuditEntry] = []
    upper = f"({cursor}" if cursor else "+"
    walked = 0
    while len(found) < limit and walked < SCAN_BUDGET:
        chunk = await redis.xrevrange(keys.AUDIT, max=upper, min="-", count=200) or []
        if not chunk:
            return found, None
        for raw_id, fields in chunk:
            entry_id = text(raw_id or "")
            walked += 1
            upper = f"({entry_id}"
            entry = _parse(fields)
            if entry is not None and (action is None or entry.action.value == action):
                found.append(entry)
                if len(found) == limit:
                    return found, entry_id
    return found, upper[1:]


async def append(redis: aioredis.Redis, entry: AuditEntry) -> None:
    """Append one entry on its own (sign-ins, which change nothing else in Redis)."""
    await redis.xadd(keys.AUDIT, {ENTRY_FIELD: entry.to_json()})
