"""Chaos tests (issue 7): real ``glider-relay`` processes and a private Redis, broken on purpose.

- test_worker_kills: 2,000 rebalances while workers are SIGKILLed and restarted at random.
- test_redis_restart: Redis SIGKILLed under a stream of slash commands, restarted from its AOF.
- test_glider_faults: 20% 5xx, 300 ms answers and a 429 storm from Glider.
- test_bad_subscribers: hanging, resetting and 500-answering subscribers beside a healthy one.
- test_redis_faults: Redis behind tcp_proxy.py (latency, resets, a blackout) under slash
  commands, steady and with the worker SIGKILLed: every ack and follow-up tells the truth.

The Glider simulator runs in the test process (configured through ``glider-relay sim``'s
own flags and seed file) so that the tests can count its operations and requests.
"""
