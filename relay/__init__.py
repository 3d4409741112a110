"""glider-relay: the Glider side (client, queue, worker, webhook relay, simulator).

`bot` may import `relay`; `relay` never imports `bot`.
"""
