"""The dispatcher's atomic steps, one Lua script each.

Every script gets the key layout of ``relay.keys`` as its first argument (so key
names live in one place) and a real ``{gr}`` key as ``KEYS[1]`` (so a Redis
Cluster client routes it to the one slot that holds every key).
"""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from relay import keys

LAYOUT = json.dumps(
    {
        "sub": keys.SUBSCRIPTION,
        "subs": keys.SUBSCRIPTIONS,
        "bytype": keys.SUBSCRIPTIONS_BY_TYPE,
        "version": keys.SUBSCRIPTIONS_VERSION,
        "ready": keys.SUBSCRIPTIONS_READY,
        "dlv": keys.DELIVERY,
        "all": keys.DELIVERIES,
        "bystatus": keys.DELIVERIES_BY_STATUS,
        "open": keys.ONCALL_OPEN,
    },
    separators=(",", ":"),
)

ATTEMPTS_KEPT = 50
ONCALL_OPEN_TTL_S = 30 * 24 * 3600

_PRELUDE = """
local L = cjson.decode(ARGV[1])
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
""".replace("ONCALL_OPEN_TTL", str(ONCALL_OPEN_TTL_S))

# KEYS[1] events stream. ARGV: layout, group, entry id, routing version, now, deliveries.
# The fan-out of one event and its XACK are one step; a stale routing table changes nothing.
FAN_OUT = (
    _PRELUDE
    + """
if (redis.call('GET', L.version) or '0') ~= ARGV[4] then return -1 end
if redis.call('XACK', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end
return create_all(cjson.decode(ARGV[6]), ARGV[5])
"""
)

# KEYS[1] subscription hash. ARGV: layout, subscription id, now, lease ms, want,
# default cap, health ('ok'/'fail'/''), throttle-until ms, disable reason,
# alert deliveries (JSON), results (JSON [[id, status, next due, attempt json], ...]),
# released (JSON ids handed back unsent). Records results, then claims up to `want`
# due deliveries under a lease.
CYCLE = (
    _PRELUDE
    + """
local sid, now, lease, want = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local skey, due, inflight = KEYS[1], due_key(ARGV[2]), inflight_key(ARGV[2])
for _, r in ipairs(cjson.decode(ARGV[11])) do
  local did, st, next_due, attempt = r[1], r[2], r[3], r[4]
  local dkey = L.dlv .. did
  if redis.call('EXISTS', dkey) == 1 then
    local n = redis.call('HINCRBY', dkey, 'n', 1)
    redis.call('HSET', dkey, 'a' .. n, attempt)
    if n > KEPT then redis.call('HDEL', dkey, 'a' .. (n - KEPT)) end
    local owned = redis.call('ZREM', inflight, did) + redis.call('ZREM', due, did) > 0
    if owned then
      redis.call('HINCRBY', dkey, 'tries', 1)
      set_status(did, sid, redis.call('HGET', dkey, 'status'), st)
      if st == 'failed' then
        redis.call('ZADD', due, next_due, did)
        redis.call('HSET', dkey, 'nextAttemptAt', next_due)
      else
        redis.call('HDEL', dkey, 'nextAttemptAt')
      end
    end
  end
end
local sub = redis.call('HMGET', skey, 'kind', 'enabled', 'maxInFlight', 'throttledUntil',
                       'url', 'secret', 'prevSecret', 'prevSecretUntil', 'failingSince')
if sub[1] then
  if ARGV[7] == 'ok' then redis.call('HDEL', skey, 'failingSince')
  elseif ARGV[7] == 'fail' and not sub[9] then
    redis.call('HSET', skey, 'failingSince', now); sub[9] = tostring(now)
  end
  local throttle = tonumber(ARGV[8])
  if throttle > (tonumber(sub[4]) or 0) then
    redis.call('HSET', skey, 'throttledUntil', throttle); sub[4] = tostring(throttle)
  end
  if ARGV[9] ~= '' and sub[2] == '1' then
    unroute(sid)
    redis.call('HSET', skey, 'enabled', '0', 'disabledReason', ARGV[9], 'updatedAt', now)
    redis.call('INCR', L.version)
    create_all(cjson.decode(ARGV[10]), now)
    sub[2] = '0'
  end
end
for _, did in ipairs(cjson.decode(ARGV[12])) do
  if redis.call('ZREM', inflight, did) == 1 then redis.call('ZADD', due, now, did) end
end
for _, did in ipairs(redis.call('ZRANGEBYSCORE', inflight, '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', inflight, did)
  redis.call('ZADD', due, now, did)
end
local claimed, cap_open = {}, true
if not sub[1] or sub[2] ~= '1' then
  local reason = sub[1] and 'subscription disabled' or 'subscription deleted'
  for _, did in ipairs(redis.call('ZRANGE', due, 0, 99)) do
    redis.call('ZREM', due, did)
    local dkey = L.dlv .. did
    if redis.call('EXISTS', dkey) == 1 then
      set_status(did, sid, redis.call('HGET', dkey, 'status'), 'dead')
      redis.call('HSET', dkey, 'reason', reason)
      redis.call('HDEL', dkey, 'nextAttemptAt')
    end
  end
elseif now >= (tonumber(sub[4]) or 0) then
  local slots = (tonumber(sub[3]) or tonumber(ARGV[6])) - redis.call('ZCARD', inflight)
  local take = math.min(slots, want)
  if take > 0 then
    for _, did in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, take)) do
      redis.call('ZREM', due, did)
      redis.call('ZADD', inflight, now + lease, did)
      local d = redis.call('HMGET', L.dlv .. did, 'webhookId', 'body', 'tries', 'eventType')
      if d[1] then
        table.insert(claimed, {did, d[1], d[2], d[3], d[4]})
      else
        redis.call('ZREM', inflight, did)
      end
    end
  end
  cap_open = slots - #claimed > 0
end
local at = nil
local head = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
local lease_head = redis.call('ZRANGE', inflight, 0, 0, 'WITHSCORES')
if head[2] and cap_open then at = tonumber(head[2]) end
if lease_head[2] and (at == nil or tonumber(lease_head[2]) < at) then
  at = tonumber(lease_head[2])
end
if at == nil and head[2] then at = tonumber(head[2]) end  -- never lose sight of queued work
if not sub[1] or sub[2] ~= '1' then
  if head[2] then at = now end
elseif at ~= nil then
  at = math.max(at, tonumber(sub[4]) or 0)
end
if at == nil then redis.call('ZREM', L.ready, sid) else redis.call('ZADD', L.ready, at, sid) end
return {sub, claimed}
""".replace("KEPT", str(ATTEMPTS_KEPT))
)

# KEYS[1] deliveries index. ARGV: layout, now, only-dead ('1'/'0'), delivery ids...
# Queues final deliveries again; answers one status word per id.
REQUEUE = (
    _PRELUDE
    + """
local now, out = ARGV[2], {}
for i = 4, #ARGV do
  local did = ARGV[i]
  local d = redis.call('HMGET', L.dlv .. did, 'status', 'subscriptionId')
  local enabled = d[2] and redis.call('HMGET', L.sub .. d[2], 'kind', 'enabled')
  if not d[1] then table.insert(out, 'missing')
  elseif ARGV[3] == '1' and d[1] ~= 'dead' then table.insert(out, 'skipped')
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

# KEYS[1] deliveries index. ARGV: layout, delivery ids... Deletes the final ones
# (and their index entries); pending and failed ones are kept.
SWEEP = (
    _PRELUDE
    + """
local removed = 0
for i = 2, #ARGV do
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

# KEYS[1] subscription hash. ARGV: layout, id, enabled ('1'/'0'), events JSON, field pairs...
# Writes the hash and re-routes it (type sets, version) in one step.
SAVE_SUBSCRIPTION = (
    _PRELUDE
    + """
local sid = ARGV[2]
unroute(sid)
local fields = {}
for i = 5, #ARGV do table.insert(fields, ARGV[i]) end
redis.call('HSET', KEYS[1], 'enabled', ARGV[3], 'events', ARGV[4], unpack(fields))
if ARGV[3] == '1' then
  for _, t in ipairs(cjson.decode(ARGV[4])) do redis.call('SADD', L.bytype .. t, sid) end
  redis.call('HDEL', KEYS[1], 'disabledReason', 'failingSince', 'throttledUntil')
end
if redis.call('HGET', KEYS[1], 'kind') == 'webhook' then redis.call('ZADD', L.subs, 0, sid) end
redis.call('INCR', L.version)
return 1
"""
)

# KEYS[1] subscription hash. ARGV: layout, id. Unroutes and deletes it; its queued
# deliveries turn dead (reason: subscription deleted) as the dispatcher drains them.
DELETE_SUBSCRIPTION = (
    _PRELUDE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
unroute(ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('ZREM', L.subs, ARGV[2])
redis.call('INCR', L.version)
if redis.call('ZCARD', due_key(ARGV[2])) > 0 then wake(ARGV[2], 0) end
return 1
"""
)

# KEYS[1] subscription hash. ARGV: layout, new secret, grace-until ms, now.
ROTATE_SECRET = (
    _PRELUDE
    + """
local old = redis.call('HGET', KEYS[1], 'secret')
if not old then return 0 end
redis.call('HSET', KEYS[1], 'secret', ARGV[2], 'prevSecret', old, 'prevSecretUntil', ARGV[3],
           'updatedAt', ARGV[4])
return 1
"""
)

# KEYS[1] subscriptions index. ARGV: layout, event types... The routing table as
# one consistent read: {version, members of type 1, members of type 2, ...}.
ROUTES = (
    _PRELUDE
    + """
local out = {redis.call('GET', L.version) or '0'}
for i = 2, #ARGV do table.insert(out, redis.call('SMEMBERS', L.bytype .. ARGV[i])) end
return out
"""
)


class Scripts:
    """Every script above, registered on one client (EVALSHA, loaded on first use)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.fan_out = redis.register_script(FAN_OUT)
        self.cycle = redis.register_script(CYCLE)
        self.requeue = redis.register_script(REQUEUE)
        self.sweep = redis.register_script(SWEEP)
        self.save_subscription = redis.register_script(SAVE_SUBSCRIPTION)
        self.delete_subscription = redis.register_script(DELETE_SUBSCRIPTION)
        self.rotate_secret = redis.register_script(ROTATE_SECRET)
        self.routes = redis.register_script(ROUTES)
