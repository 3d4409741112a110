-- Refresh (IDLE 0) or hand back (IDLE = the claim threshold) entries a consumer still owns.
-- KEYS[1] stream.
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] idle (ms), ARGV[4...] entry ids.
-- Returns the ids another consumer owns now (one acknowledged meanwhile, e.g. by its own
-- handler just before this, is no longer pending and is not reported).
-- Invariant: ownership is checked first, so a consumer that stalled never steals an
-- entry back from the one that took it over.
local group, me, idle = ARGV[1], ARGV[2], ARGV[3]
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local entry = redis.call('XPENDING', KEYS[1], group, id, id, 1)[1]
  if entry and entry[2] == me then
    redis.call('XCLAIM', KEYS[1], group, me, 0, id, 'IDLE', idle, 'JUSTID')
  elseif entry then
    table.insert(lost, id)
  end
end
return lost
