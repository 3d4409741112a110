-- Write a subscription's hash and route it again (routing sets, version) in one step.
-- KEYS[1] the audit log, then the webhook layout (webhook_keys.lua), with this subscription.
-- ARGV[1] layout JSON, ARGV[2] id, ARGV[3] enabled ('1'/'0'), ARGV[4] events JSON,
-- ARGV[5...] field/value pairs, ARGV[#ARGV] the change's audit entry ('' for none).
-- Returns 1.
-- Invariant: the routing sets match the stored events (enabled or not), and the version
-- moves with every change, so a fan-out planned before it is refused.
--! include webhook_keys.lua
local sid = ARGV[2]
local s = known(K.sub, sid, 'subscription')
unroute(sid)
local fields = {}
for i = 5, #ARGV - 1 do table.insert(fields, ARGV[i]) end
redis.call('HSET', s.hash, 'enabled', ARGV[3], 'events', ARGV[4], unpack(fields))
-- Disabled ones stay routed: their events are recorded as skipped deliveries.
for _, t in ipairs(cjson.decode(ARGV[4])) do
  redis.call('SADD', known(K.bytype, t, 'event type'), sid)
end
if ARGV[3] == '1' then
  redis.call('HDEL', s.hash, 'disabledReason', 'failingSince', 'throttledUntil')
end
if redis.call('HGET', s.hash, 'kind') == 'webhook' then redis.call('ZADD', K.subs, 0, sid) end
redis.call('INCR', K.version)
if ARGV[#ARGV] ~= '' then redis.call('XADD', KEYS[1], '*', 'entry', ARGV[#ARGV]) end
return 1
