-- Shared by the rate-limit steps: `now` in integer microseconds, from ARGV[1] when the
-- caller passes one (tests), else Redis's own clock (so skewed workers still agree).
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
