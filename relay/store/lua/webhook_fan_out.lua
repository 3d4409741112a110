-- Fan a batch of event-stream entries out into deliveries, each entry with its XACK.
-- KEYS[1] the event stream; from KEYS[2] the webhook layout (webhook_keys.lua) with every
-- row's subscription, delivery and on-call marker.
-- ARGV[1] layout JSON (first = 2), ARGV[2] group, ARGV[3] routing version the rows were
-- planned on, ARGV[4] now (ms), ARGV[5] JSON [[entry id, [row, ...]], ...] (rows as in
-- webhook_keys.lua's create).
-- Returns -1 when the routing table changed (nothing written), else the deliveries
-- created per entry (0 for an entry acknowledged before).
-- Invariant: an entry's deliveries and its XACK are one step; an entry acknowledged
-- before (taken over by another consumer) creates nothing; a stale plan writes nothing.
--! include webhook_keys.lua
if (redis.call('GET', K.version) or '0') ~= ARGV[3] then return -1 end
local out = {}
for _, item in ipairs(cjson.decode(ARGV[5])) do
  if redis.call('XACK', KEYS[1], ARGV[2], item[1]) == 1 then
    table.insert(out, create_all(item[2], ARGV[4]))
  else
    table.insert(out, 0)
  end
end
return out
