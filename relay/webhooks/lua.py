"""The dispatcher's atomic steps, one Lua script each.

Every script starts with :data:`relay.webhooks.lua_prelude.PRELUDE` (key layout
and helpers) and gets a real ``{gr}`` key as ``KEYS[1]`` (so a Redis Cluster
client routes it to the one slot that holds every key). The scheduling step is
in :mod:`relay.webhooks.lua_steps`.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.webhooks.lua_prelude import PRELUDE
from relay.webhooks.lua_steps import STEPS

# KEYS[1] events stream. ARGV: group, routing version, now, batch JSON [[entry id, rows], ...].
# Each entry's fan-out and its XACK are one step (an entry acknowledged before, e.g.
# by a consumer that took it over, creates nothing); a stale routing table, nothing at all.
FAN_OUT = (
    PRELUDE
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

# KEYS[1] deliveries index. ARGV: now, only-dead ('1'/'0'), delivery ids...
# Queues final deliveries again; answers one status word per id.
REQUEUE = (
    PRELUDE
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
    PRELUDE
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
    PRELUDE
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
    PRELUDE
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

# KEYS[1] subscription hash. ARGV: new secret, grace-until ms, now, most secrets in grace.
# 1 rotated, 0 no such subscription, -1 refused: that many earlier secrets still sign.
ROTATE_SECRET = (
    PRELUDE
    + """
local old = redis.call('HGET', KEYS[1], 'secret')
if not old then return 0 end
local kept = {}
for _, pair in ipairs(cjson.decode(redis.call('HGET', KEYS[1], 'prevSecrets') or '[]')) do
  if tonumber(pair[2]) > tonumber(ARGV[3]) then table.insert(kept, pair) end
end
-- a subscription rotated before prevSecrets existed keeps its one previous secret
local legacy = redis.call('HMGET', KEYS[1], 'prevSecret', 'prevSecretUntil')
if legacy[1] and tonumber(legacy[2] or 0) > tonumber(ARGV[3]) then
  table.insert(kept, {legacy[1], legacy[2]})
end
if #kept >= tonumber(ARGV[4]) then return -1 end
table.insert(kept, {old, ARGV[2]})
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'prevSecrets', cjson.encode(kept),
           'updatedAt', ARGV[3])
redis.call('HDEL', KEYS[1], 'prevSecret', 'prevSecretUntil')
return 1
"""
)

# KEYS[1] subscriptions index. ARGV: event types... The routing table as
# one consistent read: {version, members of type 1, members of type 2, ...}.
ROUTES = (
    PRELUDE
    + """
local out = {redis.call('GET', L.version) or '0'}
for i = 1, #ARGV do table.insert(out, redis.call('SMEMBERS', L.bytype .. ARGV[i])) end
return out
"""
)

# KEYS[1] subscription hash. ARGV: now, rows JSON (as fan-out's). Creates the rows for
# that one enabled webhook subscription: 1 created, 0 already there, -1 no such
# subscription, -2 disabled. A test event takes this path (SPEC section 10).
CREATE_FOR_SUBSCRIPTION = (
    PRELUDE
    + """
local sub = redis.call('HMGET', KEYS[1], 'kind', 'enabled')
if sub[1] ~= 'webhook' then return -1 end
if sub[2] ~= '1' then return -2 end
return create_all(cjson.decode(ARGV[2]), ARGV[1])
"""
)


class Scripts:
    """Every script above, registered on one client (EVALSHA, loaded on first use)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.fan_out = redis.register_script(FAN_OUT)
        self.steps = redis.register_script(STEPS)
        self.requeue = redis.register_script(REQUEUE)
        self.sweep = redis.register_script(SWEEP)
        self.save_subscription = redis.register_script(SAVE_SUBSCRIPTION)
        self.delete_subscription = redis.register_script(DELETE_SUBSCRIPTION)
        self.rotate_secret = redis.register_script(ROTATE_SECRET)
        self.routes = redis.register_script(ROUTES)
        self.create_for_subscription = redis.register_script(CREATE_FOR_SUBSCRIPTION)
