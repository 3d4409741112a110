-- Acknowledge one entry and copy it, with why, to the dead-letter stream.
-- KEYS[1] stream, KEYS[2] dead-letter stream.
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] JSON flat fields, ARGV[4] reason.
-- Returns the dead-letter entry's id when moved, false when already acknowledged (nothing
-- copied).
-- Invariant: an entry is dead-lettered at most once, and never while still pending.
local fields = cjson.decode(ARGV[3])
for _, extra in ipairs({'dead_reason', ARGV[4], 'dead_stream', KEYS[1], 'dead_group', ARGV[1],
                        'dead_entry', ARGV[2]}) do
  table.insert(fields, extra)
end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  return redis.call('XADD', KEYS[2], '*', unpack(fields))
end
return false
