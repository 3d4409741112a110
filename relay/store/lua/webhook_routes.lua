-- The routing table as one consistent read.
-- KEYS[1] the routing version, KEYS[2...] one routing set per event type (or '*').
-- No ARGV.
-- Returns {version, members of KEYS[2], members of KEYS[3], ...}.
-- Invariant: read only; the version belongs to exactly these members.
local out = {redis.call('GET', KEYS[1]) or '0'}
for i = 2, #KEYS do table.insert(out, redis.call('SMEMBERS', KEYS[i])) end
return out
