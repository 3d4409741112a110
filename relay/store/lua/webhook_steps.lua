-- Scheduling steps of many subscriptions in one call: for each, record finished
-- attempts, update its health, requeue released and expired leases, claim due work.
-- KEYS[1] this minute's results hash (relay/store/delivery_stats.py); from KEYS[2] the
-- webhook layout (webhook_keys.lua), with every stepped subscription and alert target,
-- the deliveries of the results and alerts, the ones the caller expects at the head of
-- each due set (read just before, or the previous step's `next`) and expired in each
-- in-flight set, and the alerts' on-call markers.
-- ARGV[1] layout JSON (with `kept`: attempts kept per delivery), ARGV[2] JSON list of step
-- requests {sub, now, lease, want, cap, health, throttle, disable, alerts, results,
-- released} (relay/webhooks/claim_step.py), ARGV[3] the results hash's TTL (s).
-- Returns per request {subscription fields (HMGET below), {{id, webhook id, body, tries,
-- event type, traceparent or false}, ...} claimed, {id, ...} next}: `next` is the head of
-- its due set after this step (up to its cap, none when disabled), the deliveries its
-- next step may claim without reading the queue first.
-- Invariant: the concurrency cap is counted in Redis (in-flight set), so it holds across
-- every worker; a lease that ends without a result is due again; queued work is never
-- lost (a subscription with due work stays in the ready set); a delivery the caller did
-- not declare stays queued for the next step.
--! include webhook_keys.lua
local KEPT = C.kept
local counted = {}  -- outcome -> attempts recorded by this call (the console's chart)
-- set_status (webhook_keys.lua) without its HSET: record writes the field with the rest.
local function move(did, s, old, new)
  if old == new then return end
  redis.call('ZREM', known(K.bystatus, old, 'status'), did)
  redis.call('ZREM', known(s.by, old, 'status'), did)
  redis.call('ZADD', known(K.bystatus, new, 'status'), 0, did)
  redis.call('ZADD', known(s.by, new, 'status'), 0, did)
end
-- Every delivery hash has a status (webhook_keys.lua's create), so reading it tells
-- whether the delivery still exists; each result costs a handful of calls, not fifteen.
local function record(q, s)
  for _, r in ipairs(q.results) do
    local did, st, next_due, attempt = r[1], r[2], r[3], r[4]
    local dkey = known(K.dlv, did, 'delivery')
    local d = redis.call('HMGET', dkey, 'status', 'tries')
    if d[1] then
      local n = redis.call('HINCRBY', dkey, 'n', 1)
      if n > KEPT then redis.call('HDEL', dkey, 'a' .. (n - KEPT)) end
      -- a result for a lease that expired and was taken again still counts once
      local held = redis.call('ZREM', s.inflight, did) == 1 or redis.call('ZREM', s.due, did) == 1
      if held then
        counted[st] = (counted[st] or 0) + 1
        move(did, s, d[1], st)
        local tries = (tonumber(d[2]) or 0) + 1
        if st == 'failed' then
          redis.call('ZADD', s.due, next_due, did)
          redis.call('HSET', dkey, 'a' .. n, attempt, 'tries', tries, 'status', st,
                     'nextAttemptAt', next_due)
        else
          redis.call('HSET', dkey, 'a' .. n, attempt, 'tries', tries, 'status', st)
          -- only a failed delivery has a next attempt (set above, dropped by a requeue)
          if d[1] == 'failed' then redis.call('HDEL', dkey, 'nextAttemptAt') end
        end
      else
        redis.call('HSET', dkey, 'a' .. n, attempt)
      end
    end
  end
end
local function health(q, s, sub)
  if q.health == 'ok' then redis.call('HDEL', s.hash, 'failingSince')
  elseif q.health == 'fail' and not sub[9] then
    redis.call('HSET', s.hash, 'failingSince', q.now); sub[9] = tostring(q.now)
  end
  if q.throttle > (tonumber(sub[4]) or 0) then
    redis.call('HSET', s.hash, 'throttledUntil', q.throttle); sub[4] = tostring(q.throttle)
  end
  if q.disable ~= '' and sub[2] == '1' then
    -- Still routed: its events from now on are recorded as skipped deliveries.
    redis.call('HSET', s.hash, 'enabled', '0', 'disabledReason', q.disable, 'updatedAt', q.now)
    redis.call('INCR', K.version)
    create_all(q.alerts, q.now)
    sub[2] = '0'
  end
end
local function drain(q, s, reason)
  for _, did in ipairs(redis.call('ZRANGE', s.due, 0, 99)) do
    local dkey = K.dlv[did]
    if not dkey then break end
    redis.call('ZREM', s.due, did)
    if redis.call('EXISTS', dkey) == 1 then
      set_status(did, q.sub, redis.call('HGET', dkey, 'status'), 'dead')
      redis.call('HSET', dkey, 'reason', reason)
      redis.call('HDEL', dkey, 'nextAttemptAt')
    end
  end
end
local function claim(q, s, sub, claimed)
  local slots = (tonumber(sub[3]) or q.cap) - redis.call('ZCARD', s.inflight)
  local take = math.min(slots, q.want)
  if take > 0 then
    for _, did in ipairs(redis.call('ZRANGEBYSCORE', s.due, '-inf', q.now, 'LIMIT', 0, take)) do
      local dkey = K.dlv[did]
      if not dkey then break end
      redis.call('ZREM', s.due, did)
      redis.call('ZADD', s.inflight, q.now + q.lease, did)
      local d = redis.call('HMGET', dkey, 'webhookId', 'body', 'tries', 'eventType',
                           'traceparent')
      if d[1] then
        table.insert(claimed, {did, d[1], d[2], d[3], d[4], d[5]})
      else
        redis.call('ZREM', s.inflight, did)
      end
    end
  end
  return slots - #claimed > 0
end
-- When this subscription next has work for any worker: its first due delivery
-- (if a slot is free), its first lease to expire, not before a throttle ends.
local function reschedule(q, s, sub, cap_open, head)
  local at = nil
  local lease_head = redis.call('ZRANGE', s.inflight, 0, 0, 'WITHSCORES')
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
    redis.call('ZREM', K.ready, q.sub)
  else
    redis.call('ZADD', K.ready, at, q.sub)
  end
end
local function step(q)
  local s = known(K.sub, q.sub, 'subscription')
  record(q, s)
  local sub = redis.call('HMGET', s.hash, 'kind', 'enabled', 'maxInFlight', 'throttledUntil',
                         'url', 'secret', 'prevSecrets', 'prevSecret', 'prevSecretUntil',
                         'failingSince')
  if sub[1] then health(q, s, sub) end
  for _, did in ipairs(q.released) do
    if redis.call('ZREM', s.inflight, did) == 1 then redis.call('ZADD', s.due, q.now, did) end
  end
  for _, did in ipairs(redis.call('ZRANGEBYSCORE', s.inflight, '-inf', q.now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', s.inflight, did)
    redis.call('ZADD', s.due, q.now, did)
  end
  local claimed, cap_open = {}, true
  if not sub[1] or sub[2] ~= '1' then
    drain(q, s, sub[1] and 'subscription disabled' or 'subscription deleted')
  elseif q.now >= (tonumber(sub[4]) or 0) then
    cap_open = claim(q, s, sub, claimed)
  end
  local enabled = sub[1] and sub[2] == '1'
  local ahead = enabled and math.max(1, tonumber(sub[3]) or q.cap) or 1
  local head = redis.call('ZRANGE', s.due, 0, ahead - 1, 'WITHSCORES')
  reschedule(q, s, sub, cap_open, head)
  local nexts = {}
  if enabled then
    for i = 1, #head, 2 do table.insert(nexts, head[i]) end
  end
  return {sub, claimed, nexts}
end
local out = {}
for _, q in ipairs(cjson.decode(ARGV[2])) do table.insert(out, step(q)) end
if next(counted) then
  for st, n in pairs(counted) do redis.call('HINCRBY', KEYS[1], st, n) end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return out
