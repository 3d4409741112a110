"""The dispatcher's atomic steps, one Lua script each.

Every script starts with the key layout of ``relay.keys`` written into its source
as a Lua table ``L`` (so key names live in one place and cost nothing per call),
and gets a real ``{gr}`` key as ``KEYS[1]`` (so a Redis Cluster client routes it
to the one slot that holds every key).
"""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from relay import keys

_LAYOUT = {
    "sub": keys.SUBSCRIPTION,
    "subs": keys.SUBSCRIPTIONS,
    "bytype": keys.SUBSCRIPTIONS_BY_TYPE,
    "version": keys.SUBSCRIPTIONS_VERSION,
    "ready": keys.SUBSCRIPTIONS_READY,
    "dlv": keys.DELIVERY,
    "all": keys.DELIVERIES,
    "bystatus": keys.DELIVERIES_BY_STATUS,
    "open": keys.ONCALL_OPEN,
}
_LAYOUT_LUA = "local L = {" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in _LAYOUT.items()) + "}"

ATTEMPTS_KEPT = 50
ONCALL_OPEN_TTL_S = 30 * 24 * 3600

_PRELUDE = """
LAYOUT_TABLE
local function due_key(s) return L.sub .. s .. ':due' end
local function inflight_key(s) return L.sub .. s .. ':inflight' end
local function set_status(did, sid, old, new)
  if old == new then return end
  if old then
    redis.call('ZREM', L.bystatus .. old, did)
    redis.call('ZREM', L.sub .. sid .. ':dlvs:' .. old, did)
  end
  redis.call('ZADD', L.bystatus .. new, 0, did)
  redis.call('ZADD', L.sub .. sid .. ':dlvs:' .. new, 0, did)
  redis.call('HSET', L.dlv .. did, 'status', new)
end
local function wake(sid, at)
  redis.call('ZADD', L.ready, 'LT', at, sid)
end
-- d = {id, subscription, event id, event type, webhook id, body}
local function create(d, now)
  local key = L.dlv .. d[1]
  if redis.call('EXISTS', key) == 1 then return 0 end
  redis.call('HSET', key, 'id', d[1], 'subscriptionId', d[2], 'eventId', d[3],
             'eventType', d[4], 'webhookId', d[5], 'body', d[6], 'createdAt', now,
             'tries', 0, 'n', 0)
  redis.call('ZADD', L.all, 0, d[1])
  redis.call('ZADD', L.sub .. d[2] .. ':dlvs', 0, d[1])
  set_status(d[1], d[2], false, 'pending')
  redis.call('ZADD', due_key(d[2]), now, d[1])
  wake(d[2], now)
  return 1
end
-- System deliveries carry d[7] = on-call marker and d[8] = 'open' or 'close':
-- 'close' ones exist only if the marker was open; 'open' ones (re)open it.
local function create_all(list, now)
  local was_open, created = {}, 0
  for _, d in ipairs(list) do
    if d[8] == 'close' and was_open[d[7]] == nil then
      was_open[d[7]] = redis.call('DEL', L.open .. d[7]) == 1
    end
  end
  for _, d in ipairs(list) do
    if d[8] ~= 'close' or was_open[d[7]] then created = created + create(d, now) end
    if d[8] == 'open' then
      redis.call('SET', L.open .. d[7], '1', 'EX', ONCALL_OPEN_TTL)
    end
  end
  return created
end
local function unroute(sid)
  local events = redis.call('HGET', L.sub .. sid, 'events')
  if events then
    for _, t in ipairs(cjson.decode(events)) do redis.call('SREM', L.bytype .. t, sid) end
  end
end
""".replace("ONCALL_OPEN_TTL", str(ONCALL_OPEN_TTL_S)).replace("LAYOUT_TABLE", _LAYOUT_LUA)

# KEYS[1] events stream. ARGV: group, routing version, now, batch JSON [[entry id, rows], ...].
# Each entry's fan-out and its XACK are one step (an entry acknowledged before, e.g.
# by a consumer that took it over, creates nothing); a stale routing table, nothing at all.
FAN_OUT = (
    _PRELUDE
    + """
if (redis.call('GET', L.version) or '0') ~= ARGV[2] then return -1 end
local out = {}
for _, item in ipairs(cjson.decode(ARGV[4])) do
  if redis.call('XACK', KEYS[1], ARGV[1], item[1]) == 1 then
    table.insert(out, create_all(item[2], ARGV[3]))
  else
    table.insert(out, 0)
  end
end
return out
"""
)

# One scheduling step of one subscription, as a function of a request `q` (see
# relay.webhooks.claims.StepRequest): record finished attempts, update the
# subscription's health, requeue released and expired leases, claim due work.
_STEP = """
local function record(q, due, inflight)
  for _, r in ipairs(q.results) do
    local did, st, next_due, attempt = r[1], r[2], r[3], r[4]
    local dkey = L.dlv .. did
    if redis.call('EXISTS', dkey) == 1 then
      local n = redis.call('HINCRBY', dkey, 'n', 1)
      redis.call('HSET', dkey, 'a' .. n, attempt)
      if n > KEPT then redis.call('HDEL', dkey, 'a' .. (n - KEPT)) end
      -- a result for a lease that expired and was taken again still counts once
      if redis.call('ZREM', inflight, did) + redis.call('ZREM', due, did) > 0 then
        redis.call('HINCRBY', dkey, 'tries', 1)
        set_status(did, q.sub, redis.call('HGET', dkey, 'status'), st)
        if st == 'failed' then
          redis.call('ZADD', due, next_due, did)
          redis.call('HSET', dkey, 'nextAttemptAt', next_due)
        else
          redis.call('HDEL', dkey, 'nextAttemptAt')
        end
      end
    end
  end
end
local function health(q, skey, sub)
  if q.health == 'ok' then redis.call('HDEL', skey, 'failingSince')
  elseif q.health == 'fail' and not sub[9] then
    redis.call('HSET', skey, 'failingSince', q.now); sub[9] = tostring(q.now)
  end
  if q.throttle > (tonumber(sub[4]) or 0) then
    redis.call('HSET', skey, 'throttledUntil', q.throttle); sub[4] = tostring(q.throttle)
  end
  if q.disable ~= '' and sub[2] == '1' then
    unroute(q.sub)
    redis.call('HSET', skey, 'enabled', '0', 'disabledReason', q.disable, 'updatedAt', q.now)
    redis.call('INCR', L.version)
    create_all(q.alerts, q.now)
    sub[2] = '0'
  end
end
local function drain(q, due, reason)
  for _, did in ipairs(redis.call('ZRANGE', due, 0, 99)) do
    redis.call('ZREM', due, did)
    local dkey = L.dlv .. did
    if redis.call('EXISTS', dkey) == 1 then
      set_status(did, q.sub, redis.call('HGET', dkey, 'status'), 'dead')
      redis.call('HSET', dkey, 'reason', reason)
      redis.call('HDEL', dkey, 'nextAttemptAt')
    end
  end
end
local function claim(q, sub, due, inflight, claimed)
  local slots = (tonumber(sub[3]) or q.cap) - redis.call('ZCARD', inflight)
  local take = math.min(slots, q.want)
  if take > 0 then
    for _, did in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', q.now, 'LIMIT', 0, take)) do
      redis.call('ZREM', due, did)
      redis.call('ZADD', inflight, q.now + q.lease, did)
      local d = redis.call('HMGET', L.dlv .. did, 'webhookId', 'body', 'tries', 'eventType')
      if d[1] then
        table.insert(claimed, {did, d[1], d[2], d[3], d[4]})
      else
        redis.call('ZREM', inflight, did)
      end
    end
  end
  return slots - #claimed > 0
end
-- When this subscription next has work for any worker: its first due delivery
-- (if a slot is free), its first lease to expire, not before a throttle ends.
local function reschedule(q, sub, due, inflight, cap_open)
  local at = nil
  local head = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
  local lease_head = redis.call('ZRANGE', inflight, 0, 0, 'WITHSCORES')
  if head[2] and cap_open then at = tonumber(head[2]) end
  if lease_head[2] and (at == nil or tonumber(lease_head[2]) < at) then
    at = tonumber(lease_head[2])
  end
  if at == nil and head[2] then at = tonumber(head[2]) end  -- never lose queued work
  if not sub[1] or sub[2] ~= '1' then
    if head[2] then at = q.now end
  elseif at ~= nil then
    at = math.max(at, tonumber(sub[4]) or 0)
  end
  if at == nil then
    redis.call('ZREM', L.ready, q.sub)
  else
    redis.call('ZADD', L.ready, at, q.sub)
  end
end
local function step(q)
  local skey, due, inflight = L.sub .. q.sub, due_key(q.sub), inflight_key(q.sub)
  record(q, due, inflight)
  local sub = redis.call('HMGET', skey, 'kind', 'enabled', 'maxInFlight', 'throttledUntil',
                         'url', 'secret', 'prevSecret', 'prevSecretUntil', 'failingSince')
  if sub[1] then health(q, skey, sub) end
  for _, did in ipairs(q.released) do
    if redis.call('ZREM', inflight, did) == 1 then redis.call('ZADD', due, q.now, did) end
  end
  for _, did in ipairs(redis.call('ZRANGEBYSCORE', inflight, '-inf', q.now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', inflight, did)
    redis.call('ZADD', due, q.now, did)
  end
  local claimed, cap_open = {}, true
  if not sub[1] or sub[2] ~= '1' then
    drain(q, due, sub[1] and 'subscription disabled' or 'subscription deleted')
  elseif q.now >= (tonumber(sub[4]) or 0) then
    cap_open = claim(q, sub, due, inflight, claimed)
  end
  reschedule(q, sub, due, inflight, cap_open)
  return {sub, claimed}
end
""".replace("KEPT", str(ATTEMPTS_KEPT))

# KEYS[1] any {gr} key. ARGV[1]: JSON list of step requests, for any subscriptions.
# One round trip records and claims for every busy subscription of a worker.
STEPS = (
    _PRELUDE
    + _STEP
    + """
local out = {}
for _, q in ipairs(cjson.decode(ARGV[1])) do table.insert(out, step(q)) end
return out
"""
)

# KEYS[1] deliveries index. ARGV: now, only-dead ('1'/'0'), delivery ids...
# Queues final deliveries again; answers one status word per id.
REQUEUE = (
    _PRELUDE
    + """
local now, out = ARGV[1], {}
for i = 3, #ARGV do
  local did = ARGV[i]
  local d = redis.call('HMGET', L.dlv .. did, 'status', 'subscriptionId')
  local enabled = d[2] and redis.call('HMGET', L.sub .. d[2], 'kind', 'enabled')
  if not d[1] then table.insert(out, 'missing')
  elseif ARGV[2] == '1' and d[1] ~= 'dead' then table.insert(out, 'skipped')
  elseif d[1] ~= 'succeeded' and d[1] ~= 'dead' then table.insert(out, 'not_final')
  elseif not enabled[1] then table.insert(out, 'subscription_deleted')
  elseif enabled[2] ~= '1' then table.insert(out, 'subscription_disabled')
  else
    set_status(did, d[2], d[1], 'pending')
    redis.call('HSET', L.dlv .. did, 'tries', 0)
    redis.call('HDEL', L.dlv .. did, 'reason', 'nextAttemptAt')
    redis.call('ZADD', due_key(d[2]), now, did)
    wake(d[2], now)
    table.insert(out, 'queued')
  end
end
return out
"""
)

# KEYS[1] deliveries index. ARGV: delivery ids... Deletes the final ones
# (and their index entries); pending and failed ones are kept.
SWEEP = (
    _PRELUDE
    + """
local removed = 0
for i = 1, #ARGV do
  local did = ARGV[i]
  local d = redis.call('HMGET', L.dlv .. did, 'status', 'subscriptionId')
  if not d[1] or d[1] == 'succeeded' or d[1] == 'dead' then
    redis.call('ZREM', L.all, did)
    if d[1] then
      redis.call('ZREM', L.bystatus .. d[1], did)
      redis.call('ZREM', L.sub .. d[2] .. ':dlvs', did)
      redis.call('ZREM', L.sub .. d[2] .. ':dlvs:' .. d[1], did)
      redis.call('DEL', L.dlv .. did)
    end
    removed = removed + 1
  end
end
return removed
"""
)

# KEYS[1] subscription hash. ARGV: id, enabled ('1'/'0'), events JSON, field pairs...
# Writes the hash and re-routes it (type sets, version) in one step.
SAVE_SUBSCRIPTION = (
    _PRELUDE
    + """
local sid = ARGV[1]
unroute(sid)
local fields = {}
for i = 4, #ARGV do table.insert(fields, ARGV[i]) end
redis.call('HSET', KEYS[1], 'enabled', ARGV[2], 'events', ARGV[3], unpack(fields))
if ARGV[2] == '1' then
  for _, t in ipairs(cjson.decode(ARGV[3])) do redis.call('SADD', L.bytype .. t, sid) end
  redis.call('HDEL', KEYS[1], 'disabledReason', 'failingSince', 'throttledUntil')
end
if redis.call('HGET', KEYS[1], 'kind') == 'webhook' then redis.call('ZADD', L.subs, 0, sid) end
redis.call('INCR', L.version)
return 1
"""
)

# KEYS[1] subscription hash. ARGV: id. Unroutes and deletes it; its queued
# deliveries turn dead (reason: subscription deleted) as the dispatcher drains them.
DELETE_SUBSCRIPTION = (
    _PRELUDE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
unroute(ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', L.subs, ARGV[1])
redis.call('INCR', L.version)
if redis.call('ZCARD', due_key(ARGV[1])) > 0 then wake(ARGV[1], 0) end
return 1
"""
)

# KEYS[1] subscription hash. ARGV: new secret, grace-until ms, now.
ROTATE_SECRET = (
    _PRELUDE
    + """
local old = redis.call('HGET', KEYS[1], 'secret')
if not old then return 0 end
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'prevSecret', old, 'prevSecretUntil', ARGV[2],
           'updatedAt', ARGV[3])
return 1
"""
)

# KEYS[1] subscriptions index. ARGV: event types... The routing table as
# one consistent read: {version, members of type 1, members of type 2, ...}.
ROUTES = (
    _PRELUDE
    + """
local out = {redis.call('GET', L.version) or '0'}
for i = 1, #ARGV do table.insert(out, redis.call('SMEMBERS', L.bytype .. ARGV[i])) end
return out
"""
)


class Scripts:
    """Every script above, registered on one client (EVALSHA, loaded on first use)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.fan_out = redis.register_script(FAN_OUT)
        self.steps = redis.register_script(STEPS)
        self.requeue = redis.register_script(REQUEUE)
        self.sweep = redis.register_script(SWEEP)
        self.save_subscription = redis.register_script(SAVE_SUBSCRIPTION)
        self.delete_subscription = redis.register_script(DELETE_SUBSCRIPTION)
        self.rotate_secret = redis.register_script(ROTATE_SECRET)
        self.routes = redis.register_script(ROUTES)
