-- Accept one command: its stream entry, request record, index entry, portfolio pointers,
-- trigger-id marker, job card, `command.received` audit entry and (a rebalance) its
-- requested event, all or nothing.
-- KEYS[1] command stream, KEYS[2] trigger-id marker, KEYS[3] request record,
-- KEYS[4] request index, KEYS[5] portfolio's latest request, KEYS[6] portfolio's
-- in-flight marker, KEYS[7] event stream, KEYS[8] the request's abandoned tombstone,
-- KEYS[9] the audit log, KEYS[10] the request's job card, KEYS[11] the card stream.
-- ARGV[1] request id, ARGV[2] trigger id or '', ARGV[3] command JSON, ARGV[4] record JSON,
-- ARGV[5] the command.received audit entry (JSON), ARGV[6] in-flight marker TTL (s),
-- ARGV[7] trigger TTL (s); a rebalance only (it takes the in-flight marker): ARGV[8..10]
-- its requested event's id, type and body, ARGV[11] that event's traceparent ('' for none).
-- Returns {status, request id}: 'queued' (this or an earlier copy), 'duplicate' (the
-- trigger's first request), 'inflight' (the running one), 'abandoned'.
-- Invariant: a tombstoned request never queues (the web already said "not queued"); a
-- second copy of an accepted request (a resent pipeline) adds nothing.
local request_id, trigger_id, command = ARGV[1], ARGV[2], ARGV[3]
local inflight_ttl, trigger_ttl, rebalance = ARGV[6], ARGV[7], #ARGV > 7
if redis.call('EXISTS', KEYS[8]) == 1 then return {'abandoned', request_id} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'queued', request_id} end
if trigger_id ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {'duplicate', prev} end
end
if rebalance then
  local current = redis.call('GET', KEYS[6])
  if current then return {'inflight', current} end
  redis.call('SET', KEYS[6], request_id, 'EX', inflight_ttl)
end
redis.call('XADD', KEYS[1], '*', 'command', command)
redis.call('XADD', KEYS[9], '*', 'entry', ARGV[5])
if rebalance then
  redis.call('XADD', KEYS[7], '*', 'id', ARGV[8], 'type', ARGV[9], 'body', ARGV[10],
             'traceparent', ARGV[11])
end
local record, fields = cjson.decode(ARGV[4]), {}
for name, value in pairs(record) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('ZADD', KEYS[4], 0, request_id)
redis.call('SET', KEYS[5], request_id)
if trigger_id ~= '' then redis.call('SET', KEYS[2], request_id, 'EX', trigger_ttl) end
-- Every queued command has a job card (relay/worker/cards.py): its first version.
redis.call('HSET', KEYS[10], 'v', 1)
redis.call('XADD', KEYS[11], '*', 'request_id', request_id, 'version', 1)
return {'queued', request_id}
