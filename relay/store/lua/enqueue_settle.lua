-- Settle an enqueue whose outcome is unknown: find it queued, or tombstone its request.
-- KEYS[1] request record, KEYS[2] trigger-id marker, KEYS[3] the request's abandoned tombstone.
-- ARGV[1] trigger id or '', ARGV[2] request id, ARGV[3] tombstone TTL (s).
-- Returns {status, request id}: 'queued', 'duplicate' (with the earlier request) or 'abandoned'.
-- Invariant: once this answers "not queued" (duplicate/abandoned), enqueue.lua finds the
-- tombstone and a late copy of the command does nothing.
local trigger_id, request_id, ttl = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 1 then return {'queued', request_id} end
if trigger_id ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev == request_id then return {'queued', request_id} end
  if prev then
    redis.call('SET', KEYS[3], '1', 'EX', ttl)
    return {'duplicate', prev}
  end
end
redis.call('SET', KEYS[3], '1', 'EX', ttl)
return {'abandoned', request_id}
