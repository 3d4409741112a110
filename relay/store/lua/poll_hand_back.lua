-- Hand back polls still under our lease: due now.
-- KEYS[1] poll due-set.
-- ARGV[1] now (ms), ARGV[2] our lease expiry (ms), ARGV[3...] request ids.
-- Returns how many were handed back.
-- Invariant: an entry whose score moved (rescheduled, or leased by another) is left alone.
local back = 0
for i = 3, #ARGV do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i])) == tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    back = back + 1
  end
end
return back
