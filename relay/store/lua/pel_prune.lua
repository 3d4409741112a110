-- Forget a group's consumers that hold nothing and have been silent for long.
-- KEYS[1] stream.
-- ARGV[1] group, ARGV[2] idle (ms) over which a consumer goes, ARGV[3] a name to keep.
-- Returns how many consumers were deleted.
-- Invariant: checked and deleted in one step, so no entry is handed to one meanwhile.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local removed = 0
for _, flat in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #flat, 2 do info[flat[i]] = flat[i + 1] end
  if tonumber(info['pending']) == 0 and tonumber(info['idle']) > tonumber(ARGV[2])
     and info['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
