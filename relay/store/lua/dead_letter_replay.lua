-- Put a dead letter back on the stream it came from, in one step: XADD its original
-- fields (the dead_* notes left out) to the source stream, XDEL it from the dead stream.
-- KEYS[1] dead-letter stream, KEYS[2] the stream it came from, KEYS[3] the audit log.
-- ARGV[1] its entry id there, ARGV[2] the replay's audit entry.
-- Returns the new entry's id, or false when there is no such dead letter.
-- Invariant: the copy and the delete are one step, so a replay done twice (two clicks,
-- two operators) puts the entry back once.
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return false end
local fields, out = found[1][2], {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 5) ~= 'dead_' then
    table.insert(out, fields[i])
    table.insert(out, fields[i + 1])
  end
end
if #out == 0 then out = {'replayed', '1'} end
local new_id = redis.call('XADD', KEYS[2], '*', unpack(out))
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'entry', ARGV[2])
return new_id
