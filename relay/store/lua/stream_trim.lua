-- Trim a stream below every group's lowest unacknowledged id (or its last-delivered id
-- when nothing is pending) and below an age floor.
-- KEYS[1] stream.
-- ARGV[1] the age floor as a stream id ('<ms>-0').
-- Returns how many entries went.
-- Invariant: only entries every group acknowledged, and older than the floor, go; a
-- stream with no group is left whole.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local function less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local floor = ARGV[1]
for _, flat in ipairs(groups) do
  local info = {}
  for i = 1, #flat, 2 do info[flat[i]] = flat[i + 1] end
  local bound = info['last-delivered-id']
  if tonumber(info['pending']) > 0 then
    bound = redis.call('XPENDING', KEYS[1], info['name'])[2]
  end
  if less(bound, floor) then floor = bound end
end
return redis.call('XTRIM', KEYS[1], 'MINID', floor)
