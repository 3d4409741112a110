-- Accept one command: its stream entry, request record, index entry, portfolio pointers,
-- trigger-id marker and (a rebalance) its requested event, all or nothing.
-- KEYS[1] command stream, KEYS[2] trigger-id marker, KEYS[3] request record,
-- KEYS[4] request index, KEYS[5] portfolio's latest request, KEYS[6] portfolio's
-- in-flight marker, KEYS[7] event stream, KEYS[8] the request's abandoned tombstone.
-- ARGV[1] trigger id or '', ARGV[2] request id, ARGV[3] command JSON,
-- ARGV[4] '1' to take the in-flight marker, ARGV[5] its TTL (s), ARGV[6] trigger TTL (s),
-- ARGV[7..9] requested event id, type, body (all '' for none), ARGV[10] record JSON,
-- ARGV[11] the requested event's traceparent ('' for none), ARGV[12] the command.received
-- audit entry (JSON), ARGV[13] '1' to announce the job card's first version.
-- KEYS[9] the audit log, KEYS[10] the request's job card, KEYS[11] the card stream.
-- Returns {status, request id}: 'queued' (this or an earlier copy), 'duplicate' (the
-- trigger's first request), 'inflight' (the running one), 'abandoned'.
-- Invariant: a tombstoned request never queues (the web already said "not queued"); a
-- second copy of an accepted request (a resent pipeline) adds nothing.
local trigger_id, request_id, command = ARGV[1], ARGV[2], ARGV[3]
local check_inflight, inflight_ttl, trigger_ttl = ARGV[4], ARGV[5], ARGV[6]
if redis.call('EXISTS', KEYS[8]) == 1 then return {'abandoned', request_id} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'queued', request_id} end
if trigger_id ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {'duplicate', prev} end
end
if check_inflight == '1' then
  local current = redis.call('GET', KEYS[6])
  if current then return {'inflight', current} end
  redis.call('SET', KEYS[6], request_id, 'EX', inflight_ttl)
end
redis.call('XADD', KEYS[1], '*', 'command', command)
redis.call('XADD', KEYS[9], '*', 'entry', ARGV[12])
if ARGV[7] ~= '' then
  redis.call('XADD', KEYS[7], '*', 'id', ARGV[7], 'type', ARGV[8], 'body', ARGV[9],
             'traceparent', ARGV[11])
end
local record, fields = cjson.decode(ARGV[10]), {}
for name, value in pairs(record) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('ZADD', KEYS[4], 0, request_id)
redis.call('SET', KEYS[5], request_id)
if trigger_id ~= '' then redis.call('SET', KEYS[2], request_id, 'EX', trigger_ttl) end
if ARGV[13] == '1' then
  redis.call('HSET', KEYS[10], 'v', 1)
  redis.call('XADD', KEYS[11], '*', 'request_id', request_id, 'version', 1)
end
return {'queued', request_id}
