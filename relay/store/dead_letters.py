"""Dead letters: stream entries the workers gave up on, listed and sent again.

A dead letter's public id is its stream's name and its entry id in the dead
stream (``commands-1700000000000-0``, ``replies-...``), so one id names one entry
of either stream and fits the admin API's id rule (1-64 of ``A-Za-z0-9_-``).
The admin routes (:mod:`relay.admin.dead_letters`) and the CLI both call
:func:`page` and :func:`replay`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict

from relay.core.audit import ADMIN, AuditAction, AuditActor, new_entry
from relay.store import keys
from relay.store.audit import entry_arg
from relay.store.connection import text
from relay.store.pending import entry_fields
from relay.store.requests import RequestStore
from relay.store.scripts import LuaScript

_REPLAY = LuaScript("dead_letter_replay.lua")
_ID = re.compile(r"^(commands|replies)-(\d{1,20}-\d{1,20})$")


class DeadStream(StrEnum):
    COMMANDS = "commands"
    REPLIES = "replies"

    @property
    def dead_key(self) -> str:
        return keys.COMMANDS_DEAD if self is DeadStream.COMMANDS else keys.REPLIES_DEAD

    @property
    def source_key(self) -> str:
        return keys.COMMAND_STREAM if self is DeadStream.COMMANDS else keys.REPLIES


class DeadLetter(BaseModel):
    """One dead letter as the admin API and the CLI show it (never the raw command:
    it holds the requester's response_url)."""

    model_config = ConfigDict(frozen=True)

    id: str
    stream: DeadStream
    requestId: str | None
    kind: str | None  # the command's action, or the reply's kind
    reason: str
    deliveries: int | None  # how often it was handed out before it died, when known
    deadAt: datetime
    entryId: str | None  # its id on the stream it came from


def public_id(stream: DeadStream, entry_id: str) -> str:
    return f"{stream.value}-{entry_id}"


def parse_id(dead_letter_id: str) -> tuple[DeadStream, str] | None:
    """The stream and dead-stream entry id of a public id; None when it is not one."""
    match = _ID.fullmatch(dead_letter_id)
    return (DeadStream(match.group(1)), match.group(2)) if match else None


def request_of(fields: dict[str, str]) -> tuple[str | None, str | None]:
    """The request id and kind an entry is about: a reply's fields, or a command's JSON."""
    if "request_id" in fields:
        return fields["request_id"], fields.get("kind")
    try:
        command = json.loads(fields.get("command", ""))
    except ValueError:
        return None, None
    if not isinstance(command, dict):
        return None, None
    request_id, action = command.get("request_id"), command.get("action")
    return (
        request_id if isinstance(request_id, str) else None,
        action if isinstance(action, str) else None,
    )


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def dead_letter_of(stream: DeadStream, entry_id: str, fields: dict[str, str]) -> DeadLetter:
    request_id, kind = request_of(fields)
    count = fields.get("dead_deliveries")
    return DeadLetter(
        id=public_id(stream, entry_id),
        stream=stream,
        requestId=request_id,
        kind=kind,
        reason=fields.get("dead_reason", ""),
        deliveries=int(count) if count and count.isdigit() else None,
        deadAt=datetime.fromtimestamp(_entry_ms(entry_id) / 1000, UTC),
        entryId=fields.get("dead_entry"),
    )


def _order(letter: DeadLetter) -> tuple[int, int, int]:
    """Newest-first order across both streams: entry time, sequence, then stream."""
    entry_id = letter.id.split("-", 1)[1]
    ms, seq = entry_id.split("-")
    return int(ms), int(seq), list(DeadStream).index(letter.stream)


async def _newest(
    redis: aioredis.Redis, stream: DeadStream, cursor: tuple[DeadStream, str] | None, count: int
) -> list[DeadLetter]:
    upper = "+"
    if cursor is not None:
        # Items of a stream ordered before the cursor's at the same id come after it.
        same_id_follows = list(DeadStream).index(stream) < list(DeadStream).index(cursor[0])
        upper = cursor[1] if same_id_follows else f"({cursor[1]}"
    raw: Any = await redis.xrevrange(stream.dead_key, upper, "-", count=count)
    return [dead_letter_of(stream, text(eid), entry_fields(fields)) for eid, fields in raw]


async def page(
    redis: aioredis.Redis, *, stream: DeadStream | None, cursor: str | None, limit: int
) -> tuple[list[DeadLetter], str | None]:
    """Up to ``limit`` dead letters after ``cursor`` (a dead letter id), newest first.

    ``stream`` None: both streams, merged by time. An unknown cursor starts over.
    """
    after = parse_id(cursor) if cursor else None
    streams = [stream] if stream is not None else list(DeadStream)
    found: list[DeadLetter] = []
    for each in streams:
        found += await _newest(redis, each, after, limit + 1)
    found.sort(key=_order, reverse=True)
    if len(found) > limit:
        return found[:limit], found[limit - 1].id
    return found, None


async def get(redis: aioredis.Redis, dead_letter_id: str) -> DeadLetter | None:
    """One dead letter by its public id."""
    parsed = parse_id(dead_letter_id)
    if parsed is None:
        return None
    stream, entry_id = parsed
    raw: Any = await redis.xrange(stream.dead_key, entry_id, entry_id)
    if not raw:
        return None
    [(eid, fields)] = raw
    return dead_letter_of(stream, text(eid), entry_fields(fields))


async def replay(
    redis: aioredis.Redis, dead_letter_id: str, *, actor: AuditActor = ADMIN
) -> str | None:
    """Put a dead letter back on its stream for the workers; its new entry id, or None
    when there is no such dead letter (a replay done twice finds none the second time)."""
    parsed = parse_id(dead_letter_id)
    if parsed is None:
        return None
    stream, entry_id = parsed
    request_id, kind = request_of((await _fields_of(redis, stream, entry_id)) or {})
    if stream is DeadStream.COMMANDS and request_id is not None:
        await _refuse_if_final(redis, request_id)
    detail = f"{stream.value} {dead_letter_id}" + (f" ({kind})" if kind else "")
    audit = new_entry(AuditAction.DEAD_LETTER_REPLAYED, actor, request_id=request_id, detail=detail)
    new_id = await _REPLAY(
        redis, [stream.dead_key, stream.source_key, keys.AUDIT], [entry_id, entry_arg(audit)]
    )
    return text(new_id) if new_id else None


class RequestFinal(Exception):
    """A command dead letter whose request has ended: putting it back would do nothing."""


async def _refuse_if_final(redis: aioredis.Redis, request_id: str) -> None:
    record = await RequestStore(redis).get(request_id)
    if record is not None and record.state.is_final:
        raise RequestFinal(
            f"request {request_id} has ended ({record.state.value}): replaying its command "
            "would do nothing; send the command again"
        )


async def _fields_of(
    redis: aioredis.Redis, stream: DeadStream, entry_id: str
) -> dict[str, str] | None:
    raw: Any = await redis.xrange(stream.dead_key, entry_id, entry_id)
    return entry_fields(raw[0][1]) if raw else None
