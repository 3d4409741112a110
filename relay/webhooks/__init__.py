"""Signed webhooks (docs/contract.md §5, §6): subscriptions, fan-out, isolated delivery, on-call.

- :mod:`~relay.webhooks.subscriptions`, :mod:`~relay.webhooks.deliveries`: the Redis records
  behind the admin API and the CLI (:mod:`~bot.cli.webhooks`).
- :mod:`~relay.webhooks.dispatcher`: the worker component (built from the settings by
  :func:`relay.webhooks.wiring.build_dispatcher`): fan-out from the events stream,
  one queue, lease and cap per subscription, retention.
- Pure cores, tested without sockets: :mod:`~relay.webhooks.signing`,
  :mod:`~relay.webhooks.secrets`, :mod:`~relay.webhooks.ssrf`,
  :mod:`~relay.webhooks.schedule`, :mod:`~relay.webhooks.policy`,
  :mod:`~relay.webhooks.oncall`, :func:`relay.webhooks.fanout.plan`.
"""
