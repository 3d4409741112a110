-- Unroute and delete a subscription.
-- KEYS[1] the audit log, then the webhook layout (webhook_keys.lua), with this subscription.
-- ARGV[1] layout JSON, ARGV[2] id, ARGV[3] the deletion's audit entry.
-- Returns 1 deleted, 0 no such subscription.
-- Invariant: the version moves; its queued deliveries stay and turn dead (reason:
-- subscription deleted) as the next scheduling step drains them, so it is woken now.
--! include webhook_keys.lua
local sid = ARGV[2]
local s = known(K.sub, sid, 'subscription')
if redis.call('EXISTS', s.hash) == 0 then return 0 end
unroute(sid)
redis.call('DEL', s.hash)
redis.call('ZREM', K.subs, sid)
redis.call('INCR', K.version)
if redis.call('ZCARD', s.due) > 0 then wake(sid, 0) end
redis.call('XADD', KEYS[1], '*', 'entry', ARGV[3])
return 1
