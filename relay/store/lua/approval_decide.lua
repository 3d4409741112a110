-- The first decision on an approval request wins: approve, reject, or expire at its deadline.
-- KEYS: 1 approval hash, 2 approvals due zset, 3 events, 4 audit stream, 5 approved commands
--       still to be queued (zset token by decided-at ms)
-- ARGV: 1 token, 2 'approved'|'rejected'|'expired', 3 decider JSON, 4 decider user id,
--       5 now ms, 6 seconds to keep the decided request,
--       7 event id, 8 event type, 9 event body, 10 audit JSON  (the decision asked for)
--       11 event id, 12 event body, 13 audit JSON              (its expiry, if past the deadline)
-- Returns {outcome, state, decided_by_json}: outcome 'missing', 'decided' (before), 'done',
-- or 'pending' (an expiry asked for before the deadline: nothing changes).
-- Invariant: the first decision wins across any number of web processes; its event and
-- audit entry are written with it; a decision after the deadline becomes the expiry; an
-- approval is noted to be queued in the same step, so a crash before its enqueue leaves it
-- for the worker to queue.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'missing', '', ''}
end
local found = redis.call('HMGET', KEYS[1], 'state', 'decided_by', 'expires_at_ms')
if found[1] ~= 'pending' then return {'decided', found[1] or '', found[2] or ''} end
if ARGV[2] == 'expired' and tonumber(found[3]) > tonumber(ARGV[5]) then
  return {'pending', 'pending', ''}
end
local state, decider = ARGV[2], ARGV[3]
local event_id, event_body, audit = ARGV[7], ARGV[9], ARGV[10]
local event_type = ARGV[8]
if state ~= 'expired' and tonumber(found[3]) <= tonumber(ARGV[5]) then
  state, decider = 'expired', ''
  event_id, event_body, audit = ARGV[11], ARGV[12], ARGV[13]
  event_type = 'rebalance.declined'
end
redis.call('HSET', KEYS[1], 'state', state, 'decided_by', decider,
  'decided_by_id', ARGV[4], 'decided_at_ms', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZREM', KEYS[2], ARGV[1])
if state == 'approved' then redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1]) end
redis.call('XADD', KEYS[3], '*', 'id', event_id, 'type', event_type, 'body', event_body)
redis.call('XADD', KEYS[4], '*', 'entry', audit)
return {'done', state, decider}
