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
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from relay import tracing
from relay.core import cards
from relay.core.audit import RELAY, AuditAction, AuditEntry, new_entry
from relay.core.plans import Plan
from relay.core.record_codec import SHORT, legacy, pack
from relay.core.records import DOUBT_MS, FIRST_POST_MS, POSTS, REFUSED, RequestState
from relay.store import keys
from relay.store.audit import entry_arg
from relay.store.connection import text
from relay.store.pending import PendingEntry
from relay.store.requests import RECORD_RETENTION_MS
from relay.store.scripts import LuaScript

log = logging.getLogger(__name__)

_APPLY = LuaScript("outcome_apply.lua")
_BEGIN_POST = LuaScript("post_begin.lua")
_POST_REFUSED = LuaScript("post_refused.lua")
_TAKE_USE = LuaScript("reply_take_use.lua")


@dataclass(frozen=True, slots=True)
class Applied:
    """Whether the plan took effect, and the state the record was in before it."""

    applied: bool
    previous_state: RequestState | None


def _lua_plan(plan: Plan, ack: PendingEntry | None) -> str:
    """The plan as the JSON the script reads (absent, never null: cjson's null is truthy)."""
    # The plan names model fields with whole values; the hash has short names and chunks
    # (relay/core/record_codec.py). A record of the previous version has the long names:
    # each field written or deleted loses its long one too.
    touched = [*plan.set_fields, *plan.delete_fields]
    out: dict[str, Any] = {
        "id": plan.request_id,
        "from": [s.value for s in plan.from_states],
        "set": pack(plan.set_fields),
        "del": [SHORT.get(name, name) for name in plan.delete_fields] + legacy(touched),
        "clear": [SHORT.get(name, name) for name in touched],
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
    if cards.shows_change(plan.set_fields):
        out["card"] = True
    new_state = plan.set_fields.get("state")
    if new_state is not None and RequestState(new_state).is_final:
        out["expire"] = RECORD_RETENTION_MS
    if ack is not None:
        out["ack"] = [ack.group, ack.entry_id]
    # cjson turns an empty {} into an empty table either way; HSET is skipped then.
    return json.dumps(out)


async def apply(redis: aioredis.Redis, plan: Plan, *, ack: PendingEntry | None = None) -> Applied:
    """Carry out ``plan`` atomically, acknowledging ``ack`` in the same step."""
    applied, previous = await _APPLY(
        redis,
        [
            keys.request(plan.request_id),
            keys.EVENTS,
            keys.REPLIES,
            keys.POLL_DUE,
            keys.portfolio_inflight(plan.portfolio_id),
            ack.stream if ack is not None else keys.COMMAND_STREAM,
            keys.AUDIT,
            keys.card(plan.request_id),
            keys.CARDS,
        ],
        # The event continues the trace of the step that caused it (relay/tracing.py).
        [_lua_plan(plan, ack), tracing.current_header(), entry_arg(outcome_entry(plan))],
    )
    before = text(previous)
    if applied:
        _log_outcome(plan)
    return Applied(bool(applied), RequestState(before) if before else None)


def _log_outcome(plan: Plan) -> None:
    """One INFO line per request that became final (completed, failed, paused, resumed, ...),
    here where every outcome is recorded, so no path logs it twice or not at all."""
    state = plan.set_fields.get("state")
    if state is None or not RequestState(state).is_final:
        return
    data = plan.event.data if plan.event is not None else None
    operation_id = (data.operationId if data else None) or plan.set_fields.get("operation_id")
    extra = {"request_id": plan.request_id, "portfolio_id": plan.portfolio_id, "state": state}
    if operation_id:
        extra["operation_id"] = operation_id
    if plan.set_fields.get("error_code"):
        extra["error_code"] = plan.set_fields["error_code"]
    log.info("request %s", state, extra=extra)


def outcome_entry(plan: Plan) -> AuditEntry | None:
    """The ``outcome.recorded`` entry of a plan that makes its request final (else None).

    Appended only if the plan applies, so a request has exactly one: its first final state.
    """
    state = plan.set_fields.get("state")
    if state is None or not RequestState(state).is_final:
        return None
    detail = state
    code, message = plan.set_fields.get("error_code"), plan.set_fields.get("error_message")
    if code:
        detail += f" ({code})"
    if message:
        detail += f": {message}"
    return new_entry(
        AuditAction.OUTCOME_RECORDED,
        RELAY,
        portfolio_id=plan.portfolio_id,
        request_id=plan.request_id,
        detail=detail,
    )


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
