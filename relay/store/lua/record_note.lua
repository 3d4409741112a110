-- Note fields on a request record that still exists (what became of its reply).
-- KEYS[1] request record. ARGV: field, value pairs; an empty value deletes the field.
--   A long value comes as its field then its chunks "field~1", "field~2", ...
--   (relay/core/record_codec.py), in that order.
-- Returns 1 if noted, 0 when the record is gone.
-- Invariant: never creates a partial record (one that expired stays gone); a field
--   noted again never keeps a chunk of its previous value.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  local field = ARGV[i]
  if not string.find(field, '~', 1, true) then
    local n = 1
    while redis.call('HDEL', KEYS[1], field .. '~' .. n) == 1 do n = n + 1 end
  end
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], field)
  else
    redis.call('HSET', KEYS[1], field, ARGV[i + 1])
  end
end
return 1
