"""Recording outcomes: each transition of a request is ONE atomic Redis step.

In one Lua call: update the request record, append its event to ``keys.EVENTS``
(for the webhook dispatcher) and its reply to ``keys.REPLIES`` (for the
requester), schedule / reschedule / unschedule its poll in ``keys.POLL_DUE``,
free the portfolio's in-flight marker when the request is final, and
acknowledge the command-stream entry that caused it. Either all of that
happened or none of it, whatever instant a worker dies at.

The step is guarded: it only applies while the record is in one of the plan's
``from_states``; otherwise it changes nothing but still acknowledges, so a
redelivered command or a second poller can never record a second outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from relay.core.ids import ulid
from relay.core.plans import DOUBT_MS, FIRST_POST_MS, POSTS, REFUSED, TRACKED_MS, Plan
from relay.core.post_rules import PostLog
from relay.core.records import RequestRecord, RequestState
from relay.store import keys
from relay.store.connection import text, text_map
from relay.store.pending import Delivery
from relay.store.scripts import LuaScript

# A final request's record is kept this long (the operations API's history), then
# expires; upkeep trims the request index to the same horizon.
RECORD_RETENTION_MS = 30 * 24 * 3600 * 1000

_APPLY = LuaScript("outcome_apply.lua")
_BEGIN_POST = LuaScript("post_begin.lua")
_POST_REFUSED = LuaScript("post_refused.lua")
_TAKE_USE = LuaScript("reply_take_use.lua")


@dataclass(frozen=True, slots=True)
class Applied:
    """Whether the plan took effect, and the state the record was in before it."""

    applied: bool
    previous_state: RequestState | None


def _lua_plan(plan: Plan, ack: Delivery | None) -> str:
    """The plan as the JSON the script reads (absent, never null: cjson's null is truthy)."""
    out: dict[str, Any] = {
        "id": plan.request_id,
        "from": [s.value for s in plan.from_states],
        "set": plan.set_fields,
        "del": list(plan.delete_fields),
    }
    if plan.event is not None:
        fields = plan.event.stream_fields()
        out["event"] = [fields["id"], fields["type"], fields["body"]]
    if plan.once:
        out["once"] = plan.once
    if plan.reply is not None:
        out["reply"] = plan.reply.value
    if plan.poll is not None:
        out["poll"] = [plan.poll.op, plan.poll.at_ms]
    if plan.release:
        out["release"] = True
    new_state = plan.set_fields.get("state")
    if new_state is not None and RequestState(new_state).is_final:
        out["expire"] = RECORD_RETENTION_MS
    if ack is not None:
        out["ack"] = [ack.group, ack.entry_id]
    # cjson turns an empty {} into an empty table either way; HSET is skipped then.
    return json.dumps(out)


async def apply(redis: aioredis.Redis, plan: Plan, *, ack: Delivery | None = None) -> Applied:
    """Carry out ``plan`` atomically, acknowledging ``ack`` in the same step."""
    applied, previous = await _APPLY(
        redis,
        [
            keys.request(plan.request_id),
            keys.EVENTS,
            keys.REPLIES,
            keys.POLL_DUE,
            keys.portfolio_inflight(plan.portfolio_id),
            ack.stream if ack is not None else keys.COMMANDS,
        ],
        [_lua_plan(plan, ack)],
    )
    before = text(previous)
    return Applied(bool(applied), RequestState(before) if before else None)


async def begin_post(redis: aioredis.Redis, request_id: str, now_ms: int) -> bool | None:
    """Note that a POST is about to leave: True (send it), False (a POST is in doubt:
    do not), None (the request is no longer queued)."""
    reply = await _BEGIN_POST(
        redis, [keys.request(request_id)], [FIRST_POST_MS, POSTS, REFUSED, DOUBT_MS, now_ms]
    )
    return bool(int(reply[0])) if reply else None


async def post_refused(redis: aioredis.Redis, request_id: str) -> None:
    """Glider's answer proved the POST in doubt never ran: it may be sent again."""
    await _POST_REFUSED(redis, [keys.request(request_id)], [POSTS, REFUSED, DOUBT_MS])


async def take_reply_use(redis: aioredis.Redis, request_id: str, *, field: str, limit: int) -> bool:
    """Take one of the response_url's uses (counted in ``field``); False if none is left."""
    return bool(await _TAKE_USE(redis, [keys.request(request_id)], [field, limit]))


async def post_log(redis: aioredis.Redis, request_id: str) -> PostLog | None:
    """The record of our POSTs, or None when the request is no longer queued."""
    state, first, posts, refused, doubt = await redis.hmget(
        keys.request(request_id), ["state", FIRST_POST_MS, POSTS, REFUSED, DOUBT_MS]
    )
    if state is None or text(state) != RequestState.QUEUED.value:
        return None
    return PostLog(
        first_ms=int(first) if first is not None else None,
        posts=int(posts or 0),
        refused=int(refused or 0),
        doubt_ms=int(doubt) if doubt is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Tracked:
    """A request record with the worker's own bookkeeping beside it."""

    record: RequestRecord
    tracked_ms: int | None  # when Glider accepted it, by our clock


async def load_tracked(redis: aioredis.Redis, request_id: str) -> Tracked | None:
    """The record and the worker's fields, or None when the request is unknown."""
    raw = await redis.hgetall(keys.request(request_id))
    if not raw:
        return None
    fields = text_map(raw)
    tracked = fields.get(TRACKED_MS)
    return Tracked(RequestRecord.from_hash(fields), int(tracked) if tracked else None)


async def forget_old_requests(redis: aioredis.Redis, *, older_than_ms: int) -> int:
    """Drop request ids made before ``older_than_ms`` from the index (their records expired).

    Request ids are ULIDs, so everything below the ULID of that instant is older.
    """
    horizon = f"req_{ulid(older_than_ms, bytes(10))}"
    removed: int = await redis.zremrangebylex(keys.REQUESTS, "-", f"({horizon}")
    return removed
