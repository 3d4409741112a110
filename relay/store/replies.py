"""What became of the requester's reply, noted on the request record.

The notifier notes each reply it delivered (how, when) and each one it gave up on
(why, and its dead letter's id), so ``GET /v1/operations`` and ``glider-relay
operations`` say whether the requester was told. A dead letter is noted right
after it is written: a crash in between leaves the dead letter (``dead-letters
list``) without the note.
"""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from relay.core.record_codec import SHORT, pack
from relay.core.redact import redact
from relay.store import keys
from relay.store.scripts import LuaScript

_NOTE = LuaScript("record_note.lua")

SENT = "sent"
NOT_SENT = "not_sent"


async def _note(redis: aioredis.Redis, request_id: str, fields: dict[str, str]) -> bool:
    # Long values go in chunks like the rest of the record (relay/core/record_codec.py);
    # the script drops a field's chunks from before first.
    # A record of the previous version has the long names: dropped first.
    old = {name: "" for name in fields if name in SHORT}
    args = [part for pair in [*old.items(), *pack(fields).items()] for part in pair]
    return bool(await _NOTE(redis, [keys.request(request_id)], args))


async def note_sent(
    redis: aioredis.Redis, request_id: str, *, kind: str, via: str, at: datetime
) -> bool:
    """The requester was told of ``kind`` through ``via``; False when the record is gone."""
    fields = {
        "reply_status": SENT,
        "reply_kind": kind,
        "reply_via": via,
        "reply_at": at.isoformat(),
        "reply_error": "",
        "reply_dead": "",
    }
    return await _note(redis, request_id, fields)


async def note_not_sent(
    redis: aioredis.Redis, request_id: str, *, kind: str, reason: str, dead_id: str, at: datetime
) -> bool:
    """The reply of ``kind`` could not be delivered; it waits as dead letter ``dead_id``."""
    fields = {
        "reply_status": NOT_SENT,
        "reply_kind": kind,
        "reply_via": "",
        "reply_at": at.isoformat(),
        "reply_error": redact(reason)[:500],
        "reply_dead": dead_id,
    }
    return await _note(redis, request_id, fields)
