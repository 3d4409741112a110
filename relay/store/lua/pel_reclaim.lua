-- Take over a group's idle entries (XAUTOCLAIM), dead-lettering those delivered too often.
-- KEYS[1] stream, KEYS[2] dead-letter stream.
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle (ms), ARGV[4] cursor, ARGV[5] count,
-- ARGV[6] most deliveries, ARGV[7] JSON {entry id: last error}.
-- Returns {next cursor, {{id, delivery count, flat fields}...}, {{id, dead-letter id, flat fields, reason}...}}.
-- Invariant: the copy to the dead stream and the XACK are one step, so an entry is never
-- both dead and pending.
local group, me, max_deliveries = ARGV[1], ARGV[2], tonumber(ARGV[6])
local errors = cjson.decode(ARGV[7])
local claimed = redis.call('XAUTOCLAIM', KEYS[1], group, me, ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local live, dead = {}, {}
for _, entry in ipairs(claimed[2]) do
  local id = entry[1]
  local pending = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  local count = 1
  if pending[1] then count = tonumber(pending[1][4]) end
  if count > max_deliveries then
    local reason = 'delivered ' .. count .. ' times (max ' .. max_deliveries .. ')'
    if errors[id] then reason = reason .. '; last error: ' .. errors[id] end
    local fields = entry[2]
    for _, extra in ipairs({'dead_reason', reason, 'dead_stream', KEYS[1], 'dead_group', group,
                            'dead_entry', id, 'dead_deliveries', tostring(count)}) do
      table.insert(fields, extra)
    end
    local dead_id = redis.call('XADD', KEYS[2], '*', unpack(fields))
    redis.call('XACK', KEYS[1], group, id)
    table.insert(dead, {id, dead_id, entry[2], reason})
  else
    table.insert(live, {id, count, entry[2]})
  end
end
return {claimed[1], live, dead}
