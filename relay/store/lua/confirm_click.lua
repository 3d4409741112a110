-- A click on a preview's Confirm or Cancel: the first click of its requester decides.
-- KEYS: 1 confirmation hash, 2 audit stream, 3 approval hash, 4 approvals due zset, 5 events
-- ARGV: 1 user id, 2 'confirm'|'cancel', 3 audit entry JSON, 4 seconds to keep the decision,
--       5 approval hash fields JSON ('' when no approval is needed), 6 approval token,
--       7 expires-at ms, 8 event id, 9 event type, 10 event body, 11 approval audit JSON
-- Returns {outcome, state}: outcome 'missing', 'not_requester', 'again' (decided before) or 'done'.
-- Invariant: only the requester's first click decides; its audit entry (and, when approval
-- is needed, the approval request, its deadline and event) are written in the same step.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', ''} end
local found = redis.call('HMGET', KEYS[1], 'user_id', 'state')
if found[1] ~= ARGV[1] then return {'not_requester', found[2] or ''} end
if found[2] ~= 'pending' then return {'again', found[2]} end
local state = 'cancelled'
if ARGV[2] == 'confirm' then state = 'confirmed' end
redis.call('HSET', KEYS[1], 'state', state)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('XADD', KEYS[2], '*', 'entry', ARGV[3])
if state == 'confirmed' and ARGV[5] ~= '' then
  local record, fields = cjson.decode(ARGV[5]), {}
  for name, value in pairs(record) do
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
  redis.call('HSET', KEYS[3], unpack(fields))
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[6])
  redis.call('XADD', KEYS[5], '*', 'id', ARGV[8], 'type', ARGV[9], 'body', ARGV[10])
  redis.call('XADD', KEYS[2], '*', 'entry', ARGV[11])
end
return {'done', state}
