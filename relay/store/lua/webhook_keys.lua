-- Included by the webhook scripts: the key layout they are called with, and their helpers.
-- ARGV[1] is JSON {first, statuses, types, subs, dlvs, open, open_ttl} and KEYS, from
-- KEYS[first] on, hold (relay/webhooks/keyspace.py builds both from relay/store/keys.py):
--   the subscriptions index, the routing version, the ready set, the deliveries index,
--   one deliveries-by-status index per status, one routing set per event type (or '*'),
--   then per subscription in `subs` 4 + #statuses keys: its hash, due set, in-flight set,
--   deliveries index, and its deliveries-by-status index per status,
--   then one delivery hash per id in `dlvs`, then per name in `open` two keys: the on-call
--   marker and its alert's Slack message hash (keys.oncall_alert).
-- Invariant: no script touches a key it was not given. A key the caller could not know
-- in advance (a delivery found in a queue) is checked with K.dlv[id] first; one left
-- out is left for the next call, never built here.
local C = cjson.decode(ARGV[1])
local K = {bystatus = {}, bytype = {}, sub = {}, dlv = {}, open = {}, alert = {}}
do
  local i = C.first
  local function take()
    local key = KEYS[i]
    i = i + 1
    return key
  end
  K.subs, K.version, K.ready, K.all = take(), take(), take(), take()
  for _, s in ipairs(C.statuses) do K.bystatus[s] = take() end
  for _, t in ipairs(C.types) do K.bytype[t] = take() end
  for _, sid in ipairs(C.subs) do
    local b = {hash = take(), due = take(), inflight = take(), dlvs = take(), by = {}}
    for _, s in ipairs(C.statuses) do b.by[s] = take() end
    K.sub[sid] = b
  end
  for _, did in ipairs(C.dlvs) do K.dlv[did] = take() end
  for _, name in ipairs(C.open) do K.open[name], K.alert[name] = take(), take() end
  if i ~= #KEYS + 1 then return redis.error_reply('ERR KEYS do not match the webhook layout') end
end
-- A key the caller must have declared; a caller that did not has a bug: stop loudly.
local function known(t, id, what)
  local key = t[id]
  if not key then error('undeclared ' .. what .. ' ' .. tostring(id)) end
  return key
end
local function set_status(did, sid, old, new)
  if old == new then return end
  local s = known(K.sub, sid, 'subscription')
  if old then
    redis.call('ZREM', known(K.bystatus, old, 'status'), did)
    redis.call('ZREM', known(s.by, old, 'status'), did)
  end
  redis.call('ZADD', known(K.bystatus, new, 'status'), 0, did)
  redis.call('ZADD', known(s.by, new, 'status'), 0, did)
  redis.call('HSET', known(K.dlv, did, 'delivery'), 'status', new)
end
-- The ready set keeps each subscription's earliest due time (ZADD LT); within one call a
-- later or equal time cannot lower it, so it is written once per subscription, not per row.
local woken = {}
local function wake(sid, at)
  local t = tonumber(at)
  if woken[sid] ~= nil and woken[sid] <= t then return end
  woken[sid] = t
  redis.call('ZADD', K.ready, 'LT', at, sid)
end
-- d = {id, subscription, event id, event type, webhook id, body, marker, mode, traceparent,
--      alert change}
-- A delivery for a disabled subscription is made 'skipped': recorded, never queued or
-- attempted, until a replay or a recovery queues it once the subscription is enabled.
local function create(d, now)
  local key = known(K.dlv, d[1], 'delivery')
  local s = known(K.sub, d[2], 'subscription')
  if redis.call('EXISTS', key) == 1 then return 0 end
  local status = 'pending'
  if redis.call('HGET', s.hash, 'enabled') == '0' then status = 'skipped' end
  redis.call('HSET', key, 'id', d[1], 'subscriptionId', d[2], 'eventId', d[3],
             'eventType', d[4], 'webhookId', d[5], 'body', d[6], 'createdAt', now,
             'tries', 0, 'n', 0, 'status', status)
  if d[9] and d[9] ~= '' then redis.call('HSET', key, 'traceparent', d[9]) end
  redis.call('ZADD', K.all, 0, d[1])
  redis.call('ZADD', s.dlvs, 0, d[1])
  redis.call('ZADD', known(K.bystatus, status, 'status'), 0, d[1])
  redis.call('ZADD', known(s.by, status, 'status'), 0, d[1])
  if status == 'pending' then
    redis.call('ZADD', s.due, now, d[1])
    wake(d[2], now)
  end
  return 1
end
-- An on-call alert's Slack message (relay/webhooks/alert_card.py reads it): h headline,
-- d detail, act '1' with buttons, to channel, n failures while open, ab/aa acknowledged
-- by/at, st steps JSON [[what, user, at], ...], ra/rn resolved at/note; v version, r
-- rendered, ch/ts where it lives (card_lock.lua). `change` is AlertChange JSON; `reopen`:
-- the incident was open before this failure. Every change bumps v; the message is the
-- same one (chat.update) until a failure opens a new incident, which posts a new one.
local function alert_change(marker, change, reopen)
  local key = known(K.alert, marker, 'alert')
  local c = cjson.decode(change)
  local shown = redis.call('HEXISTS', key, 'h') == 1
  if c.op == 'open' then
    if reopen and shown and redis.call('HEXISTS', key, 'ra') == 0 then
      redis.call('HINCRBY', key, 'n', 1)
      redis.call('HSET', key, 'h', c.h, 'd', c.d)
      redis.call('HDEL', key, 'ab', 'aa')
    else
      redis.call('HDEL', key, 'ch', 'ts', 'ab', 'aa', 'st', 'ra', 'rn')
      redis.call('HSET', key, 'h', c.h, 'd', c.d, 'act', c.act, 'to', c.to, 'n', 1)
    end
  else
    if not shown then
      -- An alert posted before alerts were kept (or lost with Redis's data): the click
      -- names the message, so it is kept from here on; otherwise there is nothing to show.
      local seed = c.seed
      if type(seed) ~= 'table' then return 0 end
      redis.call('HSET', key, 'h', seed.h, 'd', seed.d, 'act', '1', 'to', seed.ch,
                 'ch', seed.ch, 'ts', seed.ts, 'n', 1)
    end
    if c.op == 'ack' then
      redis.call('HSET', key, 'ab', c.user, 'aa', c.at)
    elseif c.op == 'step' then
      local steps = cjson.decode(redis.call('HGET', key, 'st') or '[]')
      table.insert(steps, {c.what, c.user, c.at})
      while #steps > 5 do table.remove(steps, 1) end
      redis.call('HSET', key, 'st', cjson.encode(steps))
    elseif c.op == 'resolve' then
      redis.call('HSET', key, 'ra', c.at, 'rn', c.note)
    end
  end
  redis.call('HINCRBY', key, 'v', 1)
  redis.call('EXPIRE', key, C.open_ttl)
  return 1
end
-- System deliveries carry d[7] = on-call marker and d[8] = 'open' or 'close':
-- 'close' ones exist only if the marker was open; 'open' ones (re)open it. d[10], when
-- set, is the change the delivery shows in the alert's Slack message, made with it.
local function create_all(list, now)
  local was_open, created = {}, 0
  for _, d in ipairs(list) do
    if d[8] == 'close' and was_open[d[7]] == nil then
      was_open[d[7]] = redis.call('DEL', known(K.open, d[7], 'marker')) == 1
    elseif d[8] == 'open' and was_open[d[7]] == nil then
      was_open[d[7]] = redis.call('EXISTS', known(K.open, d[7], 'marker')) == 1
    end
  end
  for _, d in ipairs(list) do
    if d[8] ~= 'close' or was_open[d[7]] then
      local made = create(d, now)
      if made == 1 and d[10] and d[10] ~= '' then alert_change(d[7], d[10], was_open[d[7]]) end
      created = created + made
    end
    if d[8] == 'open' then
      redis.call('SET', known(K.open, d[7], 'marker'), '1', 'EX', C.open_ttl)
    end
  end
  return created
end
-- The rows (JSON) whose target is configured (its subscription hash exists): an on-call
-- target that is not set up gets nothing.
local function configured(rows_json)
  local rows = {}
  for _, d in ipairs(cjson.decode(rows_json)) do
    if redis.call('EXISTS', known(K.sub, d[2], 'subscription').hash) == 1 then
      table.insert(rows, d)
    end
  end
  return rows
end
-- Out of every routing set (an event type no longer routable has no set to leave).
local function unroute(sid)
  local events = redis.call('HGET', known(K.sub, sid, 'subscription').hash, 'events')
  if events then
    for _, t in ipairs(cjson.decode(events)) do
      if K.bytype[t] then redis.call('SREM', K.bytype[t], sid) end
    end
  end
end
