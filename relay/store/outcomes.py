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
from relay.core.plans import Plan
from relay.core.records import DOUBT_MS, FIRST_POST_MS, POSTS, REFUSED, RequestState
from relay.store import keys
from relay.store.connection import text
from relay.store.pending import PendingEntry
from relay.store.requests import RECORD_RETENTION_MS

log = logging.getLogger(__name__)

# KEYS: 1 record, 2 events, 3 replies, 4 poll due-set, 5 in-flight marker, 6 acked stream
# ARGV: 1 the plan (JSON), 2 the event's traceparent ("" for none)
_APPLY = """
local plan = cjson.decode(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state')
local applied = 0
if state then
  for _, allowed in ipairs(plan['from']) do
    if allowed == state then applied = 1 end
  end
end
if applied == 1 then
  local flat = {}
  for name, value in pairs(plan['set']) do
    table.insert(flat, name)
    table.insert(flat, value)
  end
  if #flat > 0 then redis.call('HSET', KEYS[1], unpack(flat)) end
  if #plan['del'] > 0 then redis.call('HDEL', KEYS[1], unpack(plan['del'])) end
  local announce = true
  if plan['once'] then announce = redis.call('HSETNX', KEYS[1], plan['once'], '1') == 1 end
  if announce and plan['event'] then
    local e = plan['event']
    redis.call('XADD', KEYS[2], '*', 'id', e[1], 'type', e[2], 'body', e[3],
               'traceparent', ARGV[2])
  end
  if announce and plan['reply'] then
    redis.call('XADD', KEYS[3], '*', 'request_id', plan['id'], 'kind', plan['reply'])
  end
  local poll = plan['poll']
  if poll then
    if poll[1] == 'schedule' then redis.call('ZADD', KEYS[4], poll[2], plan['id'])
    elseif poll[1] == 'reschedule' then redis.call('ZADD', KEYS[4], 'XX', poll[2], plan['id'])
    else redis.call('ZREM', KEYS[4], plan['id']) end
  end
  if plan['release'] and redis.call('GET', KEYS[5]) == plan['id'] then
    redis.call('DEL', KEYS[5])
  end
  if plan['expire'] then redis.call('PEXPIRE', KEYS[1], plan['expire']) end
end
if plan['ack'] then redis.call('XACK', KEYS[6], plan['ack'][1], plan['ack'][2]) end
return {applied, state or ''}
"""

# Before a POST that must not run twice: only while the request is queued and no
# earlier POST is in doubt (posts > refused), note when it leaves and count it. The
# check and the note are one step, so two workers can never both send. Returns
# {1} when it may be sent, {0} when not, {} when the request is no longer queued.
_BEGIN_POST = """
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return {} end
local posts = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
local refused = tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or '0')
if posts > refused then return {0} end
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[5])
redis.call('HSET', KEYS[1], ARGV[2], posts + 1, ARGV[4], ARGV[5])
return {1}
"""

# Glider proved the POST in doubt was never processed: it no longer is.
_POST_REFUSED = """
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
local posts = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local refused = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
if refused >= posts then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], refused + 1)
if refused + 1 >= posts then redis.call('HDEL', KEYS[1], ARGV[3]) end
return 1
"""


@dataclass(frozen=True, slots=True)
class Applied:
    """Whether the plan took effect, and the state the record was in before it."""

    applied: bool
    previous_state: RequestState | None


def _lua_plan(plan: Plan, ack: PendingEntry | None) -> str:
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


async def apply(redis: aioredis.Redis, plan: Plan, *, ack: PendingEntry | None = None) -> Applied:
    """Carry out ``plan`` atomically, acknowledging ``ack`` in the same step."""
    applied, previous = await redis.register_script(_APPLY)(
        keys=[
            keys.request(plan.request_id),
            keys.EVENTS,
            keys.REPLIES,
            keys.POLL_DUE,
            keys.portfolio_inflight(plan.portfolio_id),
            ack.stream if ack is not None else keys.COMMAND_STREAM,
        ],
        # The event continues the trace of the step that caused it (relay/tracing.py).
        args=[_lua_plan(plan, ack), tracing.current_header()],
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


async def begin_post(redis: aioredis.Redis, request_id: str, now_ms: int) -> bool | None:
    """Note that a POST is about to leave: True (send it), False (a POST is in doubt:
    do not), None (the request is no longer queued)."""
    reply = await redis.register_script(_BEGIN_POST)(
        keys=[keys.request(request_id)], args=[FIRST_POST_MS, POSTS, REFUSED, DOUBT_MS, now_ms]
    )
    return bool(int(reply[0])) if reply else None


async def post_refused(redis: aioredis.Redis, request_id: str) -> None:
    """Glider's answer proved the POST in doubt never ran: it may be sent again."""
    await redis.register_script(_POST_REFUSED)(
        keys=[keys.request(request_id)], args=[POSTS, REFUSED, DOUBT_MS]
    )
