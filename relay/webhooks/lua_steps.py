"""The scheduling step script: record attempts, claim due deliveries, for many subscriptions.

See :mod:`relay.webhooks.claim_step` for the Python side (requests, replies, batching).
"""

from __future__ import annotations

from relay.webhooks.lua_prelude import ATTEMPTS_KEPT, PRELUDE

# One scheduling step of one subscription, as a function of a request `q` (see
# relay.webhooks.claim_step._request): record finished attempts, update the
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
      local d = redis.call('HMGET', L.dlv .. did, 'webhookId', 'body', 'tries', 'eventType',
                           'traceparent')
      if d[1] then
        table.insert(claimed, {did, d[1], d[2], d[3], d[4], d[5]})
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
                         'url', 'secret', 'prevSecrets', 'prevSecret', 'prevSecretUntil',
                         'failingSince')
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
    PRELUDE
    + _STEP
    + """
local out = {}
for _, q in ipairs(cjson.decode(ARGV[1])) do table.insert(out, step(q)) end
return out
"""
)
