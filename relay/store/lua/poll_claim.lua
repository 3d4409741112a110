-- Claim the requests whose poll is due, with a lease.
-- KEYS[1] poll due-set (request id by next-poll-at ms).
-- ARGV[1] now (ms), ARGV[2] lease expiry (ms), ARGV[3] most to claim.
-- Returns the claimed request ids.
-- Invariant: a claimed entry's score is its lease expiry, so it comes due again (for
-- any worker) if its poller dies.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return due
