"""What every dispatcher script starts with: the key layout and shared Lua helpers.

The key layout of ``relay.store.keys`` is written into each script's source as a Lua
table ``L`` (so key names live in one place and cost nothing per call).
"""

from __future__ import annotations

import json

from relay.store import keys

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

PRELUDE = """
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
-- d = {id, subscription, event id, event type, webhook id, body, [7], [8], [9] traceparent?}
local function create(d, now)
  local key = L.dlv .. d[1]
  if redis.call('EXISTS', key) == 1 then return 0 end
  redis.call('HSET', key, 'id', d[1], 'subscriptionId', d[2], 'eventId', d[3],
             'eventType', d[4], 'webhookId', d[5], 'body', d[6], 'createdAt', now,
             'tries', 0, 'n', 0, 'status', 'pending')
  if d[9] and d[9] ~= '' then redis.call('HSET', key, 'traceparent', d[9]) end
  redis.call('ZADD', L.all, 0, d[1])
  redis.call('ZADD', L.sub .. d[2] .. ':dlvs', 0, d[1])
  redis.call('ZADD', L.bystatus .. 'pending', 0, d[1])
  redis.call('ZADD', L.sub .. d[2] .. ':dlvs:pending', 0, d[1])
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
