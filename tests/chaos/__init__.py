"""Chaos tests (issue 7): real ``glider-relay`` processes and a private Redis, broken on purpose.

- test_worker_kills: 2,000 rebalances while workers are SIGKILLed and restarted at random.
- test_redis_restart: Redis SIGKILLed under a stream of slash commands, restarted from its AOF.
- test_glider_faults: 20% 5xx, 300 ms answers and a 429 storm from Glider.
- test_bad_subscribers: hanging, resetting and 500-answering subscribers beside a healthy one.
- test_redis_faults: Redis behind tcp_proxy.py (latency, resets, a blackout) under slash
  commands, steady and with the worker SIGKILLed: every ack and follow-up tells the truth,
  and no worker stops itself.
- test_worker_redis_resets: every connection of a worker reset again and again, then at
  random, then a blackout: the worker stays up, /readyz goes 503 and back, every command
  queued before, during and after ends exactly once (one Glider operation per rebalance).
- test_web_redis_resets: the same under the web: /readyz, the admin API and /rebalance
  status answer 200 or a JSON 503, never a 500.

The Glider simulator runs in the test process (configured through ``glider-relay sim``'s
own flags and seed file) so that the tests can count its operations and requests.
"""
