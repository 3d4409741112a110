-- Put a dead letter back on the stream it came from, in one step: XADD its original
-- fields (the dead_* notes left out) to KEYS[2], XDEL it from KEYS[1] (the dead stream).
-- Returns the new entry's id, or false when there is no such dead letter.
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
return new_id
