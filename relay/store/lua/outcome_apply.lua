-- Carry out one transition plan of a request (relay/core/plans.py) in one step.
-- KEYS[1] request record, KEYS[2] event stream, KEYS[3] replies stream, KEYS[4] poll
-- due-set, KEYS[5] portfolio's in-flight marker, KEYS[6] the stream the plan acknowledges.
-- ARGV[1] plan JSON: id, from (states), set, del, clear (fields whose chunks "f~1",
-- "f~2", ... go first: relay/core/record_codec.py), and optional event [id, type, body],
-- once (field), reply (kind), poll [op, at ms], release, expire (ms), ack [group, entry];
-- ARGV[2] the event's traceparent ('' for none), ARGV[3] a final outcome's audit entry
-- ('' for none); KEYS[7] the audit log, KEYS[8] the request's job card (relay/store/cards.py),
-- KEYS[9] the card stream. Plan field `card`: the move changes what the card shows; it
-- gets the next card version and an entry on the card stream.
-- Returns {1 applied / 0 not, the state before ('' when no record)}.
-- Invariant: the plan applies only from one of its `from` states, so a redelivered
-- command or a second poller records nothing twice; its ack happens either way.
local plan = cjson.decode(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state')
local applied = 0
if state then
  for _, allowed in ipairs(plan['from']) do
    if allowed == state then applied = 1 end
  end
end
if applied == 1 then
  for _, name in ipairs(plan['clear']) do
    local n = 1
    while redis.call('HDEL', KEYS[1], name .. '~' .. n) == 1 do n = n + 1 end
  end
  local flat = {}
  for name, value in pairs(plan['set']) do
    table.insert(flat, name)
    table.insert(flat, value)
  end
  if #flat > 0 then redis.call('HSET', KEYS[1], unpack(flat)) end
  if #plan['del'] > 0 then redis.call('HDEL', KEYS[1], unpack(plan['del'])) end
  if plan['card'] then
    local version = redis.call('HINCRBY', KEYS[8], 'v', 1)
    redis.call('XADD', KEYS[9], '*', 'request_id', plan['id'], 'version', version)
  end
  local announce = true
  if plan['once'] then announce = redis.call('HSETNX', KEYS[1], plan['once'], '1') == 1 end
  if announce and plan['event'] then
    local e = plan['event']
    redis.call('XADD', KEYS[2], '*', 'id', e[1], 'type', e[2], 'body', e[3],
               'traceparent', ARGV[2])
  end
  if announce and plan['reply'] then
    redis.call('XADD', KEYS[3], '*', 'request_id', plan['id'], 'kind', plan['reply'])
  end
  local poll = plan['poll']
  if poll then
    if poll[1] == 'schedule' then redis.call('ZADD', KEYS[4], poll[2], plan['id'])
    elseif poll[1] == 'reschedule' then redis.call('ZADD', KEYS[4], 'XX', poll[2], plan['id'])
    else redis.call('ZREM', KEYS[4], plan['id']) end
  end
  if plan['release'] and redis.call('GET', KEYS[5]) == plan['id'] then
    redis.call('DEL', KEYS[5])
  end
  if plan['expire'] then
    redis.call('PEXPIRE', KEYS[1], plan['expire'])
    if redis.call('EXISTS', KEYS[8]) == 1 then redis.call('PEXPIRE', KEYS[8], plan['expire']) end
  end
  if ARGV[3] ~= '' then redis.call('XADD', KEYS[7], '*', 'entry', ARGV[3]) end
end
if plan['ack'] then redis.call('XACK', KEYS[6], plan['ack'][1], plan['ack'][2]) end
return {applied, state or ''}
